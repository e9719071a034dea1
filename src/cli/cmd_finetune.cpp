// tquant finetune MODEL --data FILE -o OUT: language-model fine-tuning on the lines of a text file.
#include <fmt/format.h>

#include "cli/common.h"
#include "cli/training.h"
#include "core/error.h"
#include "core/mmap.h"
#include "core/threads.h"

namespace tq::cli {

void register_finetune(CLI::App& app) {
  auto* cmd = app.add_subcommand("finetune", "fine-tune a language model on text (next-token cross-entropy)");
  static std::string path;
  static TrainFlags f;
  static Common common;
  f.opt.label = "finetune";
  f.opt.steps = 500;
  f.opt.batch = 16;
  f.opt.schedule.lr = 1e-4f;
  cmd->add_option("model", path, "model to fine-tune")->required();
  add_train_flags(cmd, f);
  add_common(cmd, common);
  cmd->callback([] {
    DataSpec spec = parse_data_spec(f.data);
    TQ_CHECK_INPUT(spec.kind == "text",
                   "fine-tuning on {} data needs its reader and classifier loaders (the model-families work); "
                   "text files are supported",
                   spec.kind);
    Model m = load(path, common);
    TQ_CHECK_INPUT(m.cfg.is_lm() && !m.tok.empty(), "{} is not a language model with a tokenizer", path);
    TQ_CHECK_INPUT(f.ctx <= m.cfg.max_seq, "--ctx {} is longer than the {} positions of {}", f.ctx, m.cfg.max_seq, path);
    TrainOptions opt = train_options(f);
    LmSplit split = split_lines(f);
    double before = held_out_ppl(m, split, "held-out");
    TokenWindows data(token_stream(m.tok, split.fit), f.ctx);
    Trainer t(m, data, opt);
    if (f.resume && file_exists(opt.checkpoint)) t.resume(opt.checkpoint);
    t.run();
    write_lm_outputs(m, t, f);
    fmt::print("{}: {} steps on {} lines ({} tokens), final loss {:.4f}\n", f.out, t.adam.step, split.fit.size(),
               data.stream.size(), t.log.back().loss);
    if (!std::isnan(before))
      fmt::print("  held-out PPL {:.4f} -> {:.4f} ({} lines from {})\n", before, held_out_ppl(m, split, "held-out"),
                 split.held.limit, split.held.offset);
  });
}

}  // namespace tq::cli
