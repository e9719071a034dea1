#include "cli/training.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "io/tquant_dir.h"

namespace tq::cli {

void add_train_flags(CLI::App* cmd, TrainFlags& f) {
  cmd->add_option("--data", f.task.data,
                  "text FILE (one sequence per non-empty line) or, for finetune/quanttune of a classifier, mnist:DIR; "
                  "optionally ?from=&to=&offset=&limit=")
      ->required();
  cmd->add_option("-o,--output", f.out, "output: OUT.gguf (GGUF f32, LLaMA family) or a tquant directory")->required();
  cmd->add_option("--offset", f.task.offset, "skip the first N lines/images of the slice")->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", f.task.limit, "use at most N lines/images")->check(CLI::NonNegativeNumber);
  cmd->add_option("--holdout", f.task.holdout, "fraction of the pool, at the end, held out of training")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--ctx", f.task.ctx, "tokens per training sequence")->capture_default_str()->check(CLI::Range(2, 1 << 16));
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

static bool gguf_output(const TrainFlags& f) {
  return f.out.size() > 5 && f.out.compare(f.out.size() - 5, 5, ".gguf") == 0;
}

void check_output(const Model& m, const TrainFlags& f) {
  TQ_CHECK_INPUT(!gguf_output(f) || m.cfg.arch == "llama" || m.cfg.arch == "qwen2",
                 "-o {}: GGUF output holds LLaMA models (llama, qwen2), not {}; name a directory instead", f.out, m.cfg.arch);
}

void write_outputs(const Model& m, const std::vector<StepLog>& log, const TrainFlags& f, const nlohmann::json& pass) {
  if (gguf_output(f)) {
    write_gguf_f32(m, f.out);
  } else {
    QuantPlan plan;  // nothing quantized: the directory holds the f32 weights and the record of the run
    plan.passes.push_back(pass);
    save_tquant_dir(f.out, m, plan);
  }
  if (!f.log_csv.empty()) write_file_atomic(f.log_csv, loss_csv(log));
}

}  // namespace tq::cli
