#include "cli/training.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "nn/accuracy.h"
#include "nn/perplexity.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "io/tquant_dir.h"
#include "text/images.h"

namespace tq::cli {

void add_train_flags(CLI::App* cmd, TrainFlags& f) {
  cmd->add_option("--data", f.data,
                  "text FILE (one sequence per non-empty line) or, for finetune/quanttune of a classifier, mnist:DIR; "
                  "optionally ?from=&to=&offset=&limit=")
      ->required();
  cmd->add_option("-o,--output", f.out, "output: OUT.gguf (GGUF f32, LLaMA family) or a tquant directory")->required();
  cmd->add_option("--offset", f.offset, "skip the first N lines/images of the slice")->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", f.limit, "use at most N lines/images")->check(CLI::NonNegativeNumber);
  cmd->add_option("--holdout", f.holdout, "fraction of the pool, at the end, held out of training")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--ctx", f.ctx, "tokens per training sequence")->capture_default_str()->check(CLI::Range(2, 1 << 16));
  cmd->add_option("--steps", f.opt.steps, "optimizer updates")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--batch", f.opt.batch, "sequences per update")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--lr", f.opt.schedule.lr, "peak learning rate")->capture_default_str()->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--min-lr", f.opt.schedule.min_lr, "learning rate at the end of the cosine")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--warmup", f.warmup, "fraction of the steps spent warming up linearly")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--weight-decay", f.opt.adam.weight_decay, "AdamW decoupled weight decay (matrices only)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--beta2", f.opt.adam.beta2, "AdamW second-moment decay")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--clip", f.opt.clip, "global gradient-norm limit (0: none)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", f.opt.seed, "seed of the data order (and of the weights, for train)")->capture_default_str();
  cmd->add_option("--checkpoint", f.opt.checkpoint, "checkpoint file (model, optimizer, data order), written atomically");
  cmd->add_option("--checkpoint-every", f.opt.checkpoint_every, "steps between checkpoints (0: only at the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-after", f.opt.stop_after,
                  "end this run after N steps in all, to --resume later (the schedule still spans --steps)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--resume", f.resume, "continue from --checkpoint when it exists (same flags and threads: the same bits)");
  cmd->add_option("--log", f.log_csv, "write the loss curve as CSV");
}

TrainOptions train_options(const TrainFlags& f) {
  TQ_CHECK_INPUT(!f.resume || !f.opt.checkpoint.empty(), "--resume needs --checkpoint FILE");
  TrainOptions o = f.opt;
  o.schedule.warmup = (int64_t)(f.warmup * o.steps);
  return o;
}

DataSpec pool_spec(const TrainFlags& f) {
  DataSpec d = parse_data_spec(f.data);
  if (f.offset >= 0) d.offset = f.offset;
  if (f.limit >= 0) d.limit = f.limit;
  return d;
}

// The first ⌊(1 − holdout)·n⌋ of a pool of n are fitted: the held-out tail starts where a
// spec's from=0.9 would.
static int64_t fit_count(int64_t n, double holdout) { return (int64_t)((1 - holdout) * n); }

// The tail [fit, n) of the pool d as a spec of its own.
static DataSpec tail_spec(DataSpec d, int64_t fit, int64_t n) {
  d.offset += fit;
  d.limit = n - fit;
  return d;
}

LmSplit split_lines(const TrainFlags& f) {
  DataSpec d = pool_spec(f);
  TQ_CHECK_INPUT(d.kind == "text", "{} is not a text file (this run needs lines of text)", f.data);
  std::vector<std::string> all = read_lines(d.path);
  auto [b, e] = slice_range((int64_t)all.size(), d);
  int64_t fit = fit_count(e - b, f.holdout);
  TQ_CHECK_INPUT(fit > 0, "{} gives no lines to train on", f.data);
  LmSplit s;
  s.fit.assign(all.begin() + b, all.begin() + b + fit);
  s.held_lines.assign(all.begin() + b + fit, all.begin() + e);
  s.first_line = b;
  // The held-out lines by their index in the file, so that `tquant eval FILE --offset N` reads them.
  s.held.path = d.path;
  s.held.offset = b + fit;
  s.held.limit = e - b - fit;
  s.held.ctx = f.ctx;
  return s;
}

double held_out_ppl(const Model& m, const LmSplit& s, const char* label) {
  if (s.held.limit == 0) return NAN;
  return eval_lm(m, text_sequences(m.tok, s.held), no_hooks(), nullptr, nullptr, label).ppl();
}

static TaskData lm_task(const Model& m, const TrainFlags& f) {
  TQ_CHECK_INPUT(m.cfg.is_lm() && !m.tok.empty(), "{} is text, and the model is not a language model with a tokenizer",
                 f.data);
  TQ_CHECK_INPUT(f.ctx <= m.cfg.max_seq, "--ctx {} is longer than the {} positions of the model", f.ctx, m.cfg.max_seq);
  LmSplit s = split_lines(f);
  TaskData t;
  t.metric = "ppl";
  t.task_loss = "next-token cross-entropy";
  t.unit = "lines";
  t.fit_count = (int64_t)s.fit.size();
  t.held_count = s.held.limit;
  t.held_spec = s.held;
  t.fit = std::make_unique<TokenWindows>(token_stream(m.tok, s.fit), f.ctx);
  std::vector<int32_t> held = token_stream(m.tok, s.held_lines);
  if ((int64_t)held.size() > f.ctx) t.held = std::make_unique<TokenWindows>(std::move(held), f.ctx);
  return t;
}

static TaskData image_task(const Model& m, const TrainFlags& f, const DataSpec& d) {
  TQ_CHECK_INPUT(!m.cfg.is_lm() && m.cfg.embed == EmbedKind::patches, "{} holds images, and the model is not an image "
                 "classifier", f.data);
  ImageSet pool = read_mnist(d.path, d);
  TaskData t;
  t.metric = "accuracy";
  t.task_loss = "label cross-entropy";
  t.unit = "images";
  t.fit_count = fit_count(pool.n, f.holdout);
  t.held_count = pool.n - t.fit_count;
  TQ_CHECK_INPUT(t.fit_count > 0, "{} gives no images to train on", f.data);
  for (int32_t l : pool.labels)
    TQ_CHECK_INPUT(l >= 0 && l < m.cfg.n_out, "label {} is not one of the model's {} classes", l, m.cfg.n_out);
  t.held_spec = tail_spec(d, t.fit_count, pool.n);
  // The held-out images in the batches tquant eval makes of held_spec: the same accuracy to the bit.
  t.held_batches = image_batches(m.cfg, read_mnist(d.path, t.held_spec));
  pool.n = t.fit_count;
  pool.pixels.resize(pool.n * pool.image_size());
  pool.labels.resize(pool.n);
  t.fit = std::make_unique<LabelledExamples>(labelled_examples(image_batches(m.cfg, pool), m.cfg.patch_dim));
  if (t.held_count > 0)
    t.held = std::make_unique<LabelledExamples>(labelled_examples(t.held_batches, m.cfg.patch_dim));
  return t;
}

static bool gguf_output(const TrainFlags& f) {
  return f.out.size() > 5 && f.out.compare(f.out.size() - 5, 5, ".gguf") == 0;
}

TaskData task_data(const Model& m, const TrainFlags& f) {
  // Checked before any work: the trainers write GGUF for the LLaMA family only.
  TQ_CHECK_INPUT(!gguf_output(f) || m.cfg.arch == "llama", "-o {}: GGUF output holds LLaMA models, not {}; name a "
                 "directory instead", f.out, m.cfg.arch);
  DataSpec d = pool_spec(f);
  if (d.kind == "text") return lm_task(m, f);
  if (d.kind == "mnist") return image_task(m, f, d);
  bad_input("fine-tuning reads text files and mnist:DIR, not {} data (sentences of different lengths would need a "
            "padding mask)",
            d.kind);
}

double held_out(const Model& m, const TaskData& d, const char* label) {
  if (d.held_count == 0) return NAN;
  if (d.metric == "ppl") return eval_lm(m, text_sequences(m.tok, d.held_spec), no_hooks(), nullptr, nullptr, label).ppl();
  return eval_classifier(m, d.held_batches, no_hooks(), nullptr, nullptr, label).accuracy();
}

bool within_tolerance(const TaskData& d, double value, double base, double tolerance) {
  return d.lower_is_better() ? value <= base * (1 + tolerance) : value >= base * (1 - tolerance);
}

std::string held_out_line(const TaskData& d, const char* label, double before, double after) {
  auto show = [&](double v) {
    return d.metric == "ppl" ? fmt::format("PPL {:.4f}", v) : fmt::format("accuracy {:.2f}%", 100 * v);
  };
  std::string where = d.metric == "ppl" ? fmt::format("lines {}.. of {}", d.held_spec.offset, d.held_spec.path)
                                        : fmt::format("mnist:{}?from={}&to={}&offset={}&limit={}", d.held_spec.path,
                                                      d.held_spec.from, d.held_spec.to, d.held_spec.offset,
                                                      d.held_spec.limit);
  std::string b = show(before), a = show(after);
  return fmt::format("{} {} -> {} ({} {}: {})", label, b, a.substr(a.find(' ') + 1), d.held_count, d.unit, where);
}

void write_outputs(const Model& m, const Trainer& t, const TrainFlags& f, const nlohmann::json& pass) {
  if (gguf_output(f)) {
    write_gguf_f32(m, f.out);
  } else {
    QuantPlan plan;  // nothing quantized: the directory holds the f32 weights and the record of the run
    plan.passes.push_back(pass);
    save_tquant_dir(f.out, m, plan);
  }
  if (!f.log_csv.empty()) write_file_atomic(f.log_csv, loss_csv(t.log));
}

nlohmann::json optimizer_json(const TrainOptions& opt) {
  return {{"name", "adamw"},        {"lr", opt.schedule.lr},        {"min_lr", opt.schedule.min_lr},
          {"warmup_steps", opt.schedule.warmup}, {"schedule", "linear warm-up, cosine decay"},
          {"weight_decay", opt.adam.weight_decay}, {"beta1", opt.adam.beta1}, {"beta2", opt.adam.beta2},
          {"eps", opt.adam.eps},    {"clip", opt.clip},             {"steps", opt.steps},
          {"batch", opt.batch},     {"seed", opt.seed}};
}

}  // namespace tq::cli
