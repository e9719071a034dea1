// tquant finetune MODEL --data SPEC -o OUT: fine-tuning on the task the data names (training.h):
// next-token cross-entropy on the lines of a text file, or label cross-entropy on MNIST images for
// an image classifier. The last --holdout of the pool is held out and scored before and after.
#include <fmt/format.h>

#include <cmath>

#include "cli/common.h"
#include "cli/training.h"
#include "core/error.h"
#include "core/mmap.h"
#include "core/threads.h"

namespace tq::cli {

void register_finetune(CLI::App& app) {
  auto* cmd = app.add_subcommand("finetune", "fine-tune a language model on text or a classifier on labelled images");
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
    pool_spec(f.task);  // a malformed spec fails before the model is read
    Model m = load(path, common);
    TrainOptions opt = train_options(f);
    check_output(m, f);
    TaskData data = task_data(m, f.task);
    double before = held_out(m, data, "held-out");
    Trainer t(m, *data.fit, opt);
    if (f.resume && file_exists(opt.checkpoint)) t.resume(opt.checkpoint);
    t.run();
    write_outputs(m, t.log, f,
                  {{"pass", "finetune"}, {"model", path}, {"data", f.task.data}, {"task_loss", data.task_loss},
                   {"optimizer", optimizer_json(opt)}, {"steps_done", t.adam.step}, {"threads", num_threads()}});
    fmt::print("{}: {} steps on {} {} ({} examples), final loss {:.4f}\n", f.out, t.adam.step, data.fit_count,
               data.unit, data.fit->size(), t.log.back().loss);
    if (!std::isnan(before)) fmt::print("  {}\n", held_out_line(data, "held-out", before, held_out(m, data, "held-out")));
  });
}

}  // namespace tq::cli
