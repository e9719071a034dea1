// tquant quanttune MODEL --data SPEC -o OUT: the QuantTune run of passes/quanttune.h (the
// outlier-driven loss of docs/methods.md §4, guard and roll-back) on a pool of lines of text for a
// language model or MNIST images for a classifier (nn/task.h), a tenth of it held out as the
// guard set. Its hyperparameters, the guard history and every site's dynamic range and 8-bit
// SQNR before and after go to OUT's stem + ".quanttune.json".
#include <fmt/format.h>

#include <filesystem>

#include "cli/common.h"
#include "cli/training.h"
#include "core/error.h"
#include "passes/quanttune.h"

namespace tq::cli {

void register_quanttune(CLI::App& app) {
  auto* cmd = app.add_subcommand("quanttune", "fine-tune so that activations quantize well (QuantTune)");
  static std::string path, sites = "qkv_in,o_in,up_in,down_in,head_in";
  static QuantTuneConfig q;
  static TrainFlags f;
  static Common common;
  f.opt = q.train;
  cmd->add_option("model", path, "model to fine-tune (a language model, or an image classifier with mnist:DIR)")->required();
  add_train_flags(cmd, f);
  cmd->add_option("--k", q.loss.k, "band width of the outlier loss, in σ")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 100.0));
  cmd->add_option("--lambda", q.loss.lambda, "weight of the outlier loss")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--sites", sites, "monitored sites, comma-separated")->capture_default_str();
  cmd->add_option("--guard-every", q.guard_every, "steps between guard evaluations")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--guard-tolerance", q.guard_tolerance,
                  "largest relative degradation of the guard metric (perplexity or accuracy)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  add_common(cmd, common);
  cmd->callback([] {
    q.loss.sites = parse_sites(sites);
    pool_spec(f.task);  // a malformed spec fails before the model is read
    Model m = load(path, common);
    f.task.holdout = 0.1;  // the guard set: a tenth of the pool
    q.train = train_options(f);
    q.resume = f.resume;
    check_output(m, f);
    TaskData data = task_data(m, f.task);
    QuantTuneRun r = quanttune(m, data, f.task, q);

    nlohmann::json rec = r.record;
    rec["model"] = path;
    rec["output"] = f.out;
    write_outputs(m, r.log, f, {{"pass", "quanttune"}, {"k", rec["k"]}, {"lambda", rec["lambda"]}, {"eps", rec["eps"]},
                                {"sites", rec["sites"]}, {"task_loss", data.task_loss}, {"data", f.task.data},
                                {"optimizer", rec["optimizer"]}, {"steps_done", r.kept_step}, {"guard", rec["guard"]}});
    std::string json_path = std::filesystem::path(f.out).replace_extension(".quanttune.json").string();
    write_json(json_path, rec);

    fmt::print("{}: {} of {} steps{}; record in {}\n  {}\n", f.out, r.kept_step, q.train.steps,
               r.stopped ? " (stopped by the guard, rolled back)" : "", json_path,
               held_out_line(data, "guard", r.guard_before, r.guard_after));
    fmt::print("{}", site_range_table(r));
  });
}

}  // namespace tq::cli
