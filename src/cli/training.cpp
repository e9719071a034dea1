#include "cli/training.h"

#include <fmt/format.h>

#include "core/error.h"
#include "eval/perplexity.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"

namespace tq::cli {

void add_train_flags(CLI::App* cmd, TrainFlags& f) {
  cmd->add_option("--data", f.data, "text file, one sequence per non-empty line")->required();
  cmd->add_option("-o,--output", f.out, "output model (GGUF f32)")->required();
  cmd->add_option("--offset", f.offset, "skip the first N lines")->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", f.limit, "use at most N lines")->check(CLI::NonNegativeNumber);
  cmd->add_option("--holdout", f.holdout, "fraction of the lines, at the end, held out of training")
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

LmSplit split_lines(const TrainFlags& f) {
  std::vector<std::string> all = read_lines(f.data);
  TQ_CHECK_INPUT(f.offset <= (int64_t)all.size(), "--offset {} is beyond the {} lines of {}", f.offset, all.size(),
                 f.data);
  int64_t end = f.limit > 0 ? std::min<int64_t>(all.size(), f.offset + f.limit) : (int64_t)all.size();
  // The held-out tail starts at ⌊(1 − holdout)·n⌋: the line a data spec's from=0.9 names.
  int64_t n = end - f.offset, fit = (int64_t)((1 - f.holdout) * n);
  TQ_CHECK_INPUT(fit > 0, "{} gives no lines to train on", f.data);
  LmSplit s;
  s.fit.assign(all.begin() + f.offset, all.begin() + f.offset + fit);
  s.held_lines.assign(all.begin() + f.offset + fit, all.begin() + end);
  s.first_line = f.offset;
  s.held.path = f.data;
  s.held.offset = f.offset + fit;
  s.held.limit = n - fit;
  s.held.ctx = f.ctx;
  return s;
}

double held_out_ppl(const Model& m, const LmSplit& s, const char* label) {
  if (s.held.limit == 0) return NAN;
  return eval_lm(m, text_sequences(m.tok, s.held), no_hooks(), nullptr, nullptr, label).ppl();
}

void write_lm_outputs(const Model& m, const Trainer& t, const TrainFlags& f) {
  write_gguf_f32(m, f.out);
  if (!f.log_csv.empty()) write_file_atomic(f.log_csv, loss_csv(t.log));
}

}  // namespace tq::cli
