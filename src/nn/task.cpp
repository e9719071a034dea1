#include "nn/task.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "nn/accuracy.h"
#include "nn/perplexity.h"
#include "text/images.h"

namespace tq {

DataSpec pool_spec(const TaskSpec& t) {
  DataSpec d = parse_data_spec(t.data);
  if (t.offset >= 0) d.offset = t.offset;
  if (t.limit >= 0) d.limit = t.limit;
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

LmSplit split_lines(const TaskSpec& t) {
  DataSpec d = pool_spec(t);
  TQ_CHECK_INPUT(d.kind == "text", "{} is not a text file (this run needs lines of text)", t.data);
  std::vector<std::string> all = read_lines(d.path);
  auto [b, e] = slice_range((int64_t)all.size(), d);
  int64_t fit = fit_count(e - b, t.holdout);
  TQ_CHECK_INPUT(fit > 0, "{} gives no lines to train on", t.data);
  LmSplit s;
  s.fit.assign(all.begin() + b, all.begin() + b + fit);
  s.held_lines.assign(all.begin() + b + fit, all.begin() + e);
  s.first_line = b;
  // The held-out lines by their index in the file, so that `tquant eval FILE --offset N` reads them.
  s.held.path = d.path;
  s.held.offset = b + fit;
  s.held.limit = e - b - fit;
  s.held.ctx = t.ctx;
  return s;
}

double held_out_ppl(const Model& m, const LmSplit& s, const char* label) {
  if (s.held.limit == 0) return NAN;
  return eval_lm(m, text_sequences(m.tok, s.held), no_hooks(), nullptr, nullptr, label).ppl();
}

static TaskData lm_task(const Model& m, const TaskSpec& t) {
  TQ_CHECK_INPUT(m.cfg.is_lm() && !m.tok.empty(), "{} is text, and the model is not a language model with a tokenizer",
                 t.data);
  TQ_CHECK_INPUT(t.ctx <= m.cfg.max_seq, "--ctx {} is longer than the {} positions of the model", t.ctx, m.cfg.max_seq);
  LmSplit s = split_lines(t);
  TaskData d;
  d.metric = "ppl";
  d.task_loss = "next-token cross-entropy";
  d.unit = "lines";
  d.fit_count = (int64_t)s.fit.size();
  d.held_count = s.held.limit;
  d.held_spec = s.held;
  d.fit = std::make_unique<TokenWindows>(token_stream(m.tok, s.fit), t.ctx);
  std::vector<int32_t> held = token_stream(m.tok, s.held_lines);
  if ((int64_t)held.size() > t.ctx) d.held = std::make_unique<TokenWindows>(std::move(held), t.ctx);
  return d;
}

static TaskData image_task(const Model& m, const TaskSpec& t, const DataSpec& spec) {
  TQ_CHECK_INPUT(!m.cfg.is_lm() && m.cfg.embed == EmbedKind::patches, "{} holds images, and the model is not an image "
                 "classifier", t.data);
  ImageSet pool = read_mnist(spec.path, spec);
  TaskData d;
  d.metric = "accuracy";
  d.task_loss = "label cross-entropy";
  d.unit = "images";
  d.fit_count = fit_count(pool.n, t.holdout);
  d.held_count = pool.n - d.fit_count;
  TQ_CHECK_INPUT(d.fit_count > 0, "{} gives no images to train on", t.data);
  for (int32_t l : pool.labels)
    TQ_CHECK_INPUT(l >= 0 && l < m.cfg.n_out, "label {} is not one of the model's {} classes", l, m.cfg.n_out);
  d.held_spec = tail_spec(spec, d.fit_count, pool.n);
  // The held-out images in the batches tquant eval makes of held_spec: the same accuracy to the bit.
  d.held_batches = image_batches(m.cfg, read_mnist(spec.path, d.held_spec));
  pool.n = d.fit_count;
  pool.pixels.resize(pool.n * pool.image_size());
  pool.labels.resize(pool.n);
  d.fit = std::make_unique<LabelledExamples>(labelled_examples(image_batches(m.cfg, pool), m.cfg.patch_dim));
  if (d.held_count > 0)
    d.held = std::make_unique<LabelledExamples>(labelled_examples(d.held_batches, m.cfg.patch_dim));
  return d;
}

TaskData task_data(const Model& m, const TaskSpec& t) {
  DataSpec d = pool_spec(t);
  if (d.kind == "text") return lm_task(m, t);
  if (d.kind == "mnist") return image_task(m, t, d);
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

}  // namespace tq
