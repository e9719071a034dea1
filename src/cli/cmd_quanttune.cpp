// tquant quanttune MODEL --data SPEC -o OUT: fine-tuning with the outlier-driven loss of
// methods.md §4 on a pool (lines of text for a language model, MNIST images for a classifier;
// training.h), a tenth of it held out as the guard set: the run stops and rolls back to the last
// checked state when the guard metric (perplexity, or accuracy) degrades by more than
// --guard-tolerance (relative). Its hyperparameters, the guard history and every site's
// dynamic range and 8-bit SQNR before and after go to OUT's stem + ".quanttune.json".
#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "cli/common.h"
#include "cli/training.h"
#include "core/error.h"
#include "core/mmap.h"
#include "core/threads.h"
#include "passes/quanttune.h"

namespace tq::cli {

void register_quanttune(CLI::App& app) {
  auto* cmd = app.add_subcommand("quanttune", "fine-tune so that activations quantize well (QuantTune)");
  static std::string path, sites = "qkv_in,o_in,up_in,down_in,head_in";
  static TrainFlags f;
  static Common common;
  static QuantTuneOptions q;
  static int64_t guard_every = 50;
  static double tolerance = 0.005;
  f.opt.label = "quanttune";
  f.opt.steps = 500;
  f.opt.batch = 16;
  f.opt.schedule.lr = 1e-4f;
  cmd->add_option("model", path, "model to fine-tune (a language model, or an image classifier with mnist:DIR)")->required();
  add_train_flags(cmd, f);
  cmd->add_option("--k", q.k, "band width of the outlier loss, in σ")->capture_default_str()->check(CLI::Range(0.5, 100.0));
  cmd->add_option("--lambda", q.lambda, "weight of the outlier loss")->capture_default_str()->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--sites", sites, "monitored sites, comma-separated")->capture_default_str();
  cmd->add_option("--guard-every", guard_every, "steps between guard evaluations")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--guard-tolerance", tolerance, "largest relative degradation of the guard metric (perplexity or accuracy)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  add_common(cmd, common);
  cmd->callback([] {
    q.sites = parse_sites(sites);
    pool_spec(f);  // a malformed spec fails before the model is read
    Model m = load(path, common);
    f.holdout = 0.1;  // the guard set: a tenth of the pool
    TrainOptions opt = train_options(f);
    TaskData data = task_data(m, f);
    TQ_CHECK_INPUT(data.held != nullptr, "the pool of {} {} is too small to hold out a guard tenth", data.fit_count,
                   data.unit);
    auto ranges_before = site_ranges(m, *data.held, f.opt.batch, q.sites, q.k);
    const double base = held_out(m, data, "guard");

    OutlierLossHook hook(q);
    Trainer t(m, *data.fit, opt, &hook);
    if (f.resume && file_exists(opt.checkpoint)) t.resume(opt.checkpoint);
    Model kept = m;
    int64_t kept_step = t.adam.step;
    bool stopped = false;
    nlohmann::json history = nlohmann::json::array();
    auto check = [&](Trainer& tr) {
      double v = held_out(m, data, "guard");
      bool ok = within_tolerance(data, v, base, tolerance);
      history.push_back({{"step", tr.adam.step}, {"guard_" + data.metric, v}, {"loss", tr.log.back().loss},
                         {"outlier_loss", tr.log.back().extra}, {"within_guard", ok}});
      if (ok) {
        kept = m;
        kept_step = tr.adam.step;
      }
      stopped = !ok;
      return ok;
    };
    t.run(guard_every, check);
    if (!stopped && kept_step != t.adam.step) check(t);  // the steps after the last check
    if (stopped) m = kept;
    const double after = held_out(m, data, "guard");
    auto ranges_after = site_ranges(m, *data.held, f.opt.batch, q.sites, q.k);

    nlohmann::json rec = {
        {"method", "quanttune"},
        {"spec", "methods.md §4.2-4.4"},
        {"model", path},
        {"output", f.out},
        {"k", q.k},
        {"lambda", q.lambda},
        {"eps", q.eps},
        {"sites", nlohmann::json::array()},
        {"task_loss", data.task_loss},
        {"optimizer", optimizer_json(opt)},
        {"steps", opt.steps},
        {"steps_done", t.adam.step},
        {"batch", opt.batch},
        {"seed", opt.seed},
        {"threads", num_threads()},
        {"fake_quant", false},
        {"pool", {{"data", f.data}, {"unit", data.unit}, {"fit", data.fit_count}, {"guard", data.held_count},
                  {"guard_offset", data.held_spec.offset}}},
        {"guard", {{"metric", data.metric}, {"tolerance", tolerance}, {"every", guard_every}, {"before", base},
                   {"after", after}, {"stopped", stopped}, {"kept_step", kept_step}, {"history", history}}},
        {"sites_before", to_json(ranges_before)},
        {"sites_after", to_json(ranges_after)},
    };
    if (data.metric == "ppl") rec["ctx"] = f.ctx;
    for (Site s : q.sites) rec["sites"].push_back(site_name(s));
    write_outputs(m, t, f, {{"pass", "quanttune"}, {"k", q.k}, {"lambda", q.lambda}, {"eps", q.eps},
                            {"sites", rec["sites"]}, {"task_loss", data.task_loss}, {"data", f.data},
                            {"optimizer", rec["optimizer"]}, {"steps_done", kept_step}, {"guard", rec["guard"]}});
    std::string json_path = std::filesystem::path(f.out).replace_extension(".quanttune.json").string();
    write_json(json_path, rec);

    fmt::print("{}: {} of {} steps{}; record in {}\n  {}\n", f.out, kept_step, opt.steps,
               stopped ? " (stopped by the guard, rolled back)" : "", json_path,
               held_out_line(data, "guard", base, after));
    fmt::print("  {:<8} {:>5} {:>19} {:>19} {:>7} {:>7} {:>8} {:>8}\n", "site", "layer", "range", "range'", "DR", "DR'",
               "SQNR8", "SQNR8'");
    for (size_t i = 0; i < ranges_before.size(); i++) {
      const SiteRange &a = ranges_before[i], &b = ranges_after[i];
      fmt::print("  {:<8} {:>5} [{:>8.3f},{:>8.3f}] [{:>8.3f},{:>8.3f}] {:>7.3f} {:>7.3f} {:>6.2f}dB {:>6.2f}dB\n",
                 site_name(a.site), a.layer, a.min, a.max, b.min, b.max, a.dr, b.dr, a.sqnr_db, b.sqnr_db);
    }
  });
}

}  // namespace tq::cli
