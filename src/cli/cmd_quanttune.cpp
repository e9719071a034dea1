// tquant quanttune MODEL --data FILE -o OUT: fine-tuning with the outlier-driven loss of
// methods.md §4 on a pool of lines, a tenth of it held out as the guard set: the run stops and
// rolls back to the last checked state when the guard perplexity degrades by more than
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
  cmd->add_option("model", path, "model to fine-tune")->required();
  add_train_flags(cmd, f);
  cmd->add_option("--k", q.k, "band width of the outlier loss, in σ")->capture_default_str()->check(CLI::Range(0.5, 100.0));
  cmd->add_option("--lambda", q.lambda, "weight of the outlier loss")->capture_default_str()->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--sites", sites, "monitored sites, comma-separated")->capture_default_str();
  cmd->add_option("--guard-every", guard_every, "steps between guard evaluations")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--guard-tolerance", tolerance, "largest relative rise of the guard perplexity")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  add_common(cmd, common);
  cmd->callback([] {
    q.sites = parse_sites(sites);
    Model m = load(path, common);
    TQ_CHECK_INPUT(m.cfg.is_lm() && !m.tok.empty(), "{} is not a language model with a tokenizer", path);
    TQ_CHECK_INPUT(f.ctx <= m.cfg.max_seq, "--ctx {} is longer than the {} positions of {}", f.ctx, m.cfg.max_seq, path);
    f.holdout = 0.1;  // the guard set: a tenth of the pool
    TrainOptions opt = train_options(f);
    LmSplit split = split_lines(f);
    TQ_CHECK_INPUT(split.held.limit > 0, "the pool of {} lines is too small to hold out a guard tenth",
                   split.fit.size());
    TokenWindows data(token_stream(m.tok, split.fit), f.ctx);
    TokenWindows guard(token_stream(m.tok, split.held_lines), f.ctx);
    auto ranges_before = site_ranges(m, guard, f.opt.batch, q.sites, q.k);
    const double base = held_out_ppl(m, split, "guard");

    OutlierLossHook hook(q);
    Trainer t(m, data, opt, &hook);
    if (f.resume && file_exists(opt.checkpoint)) t.resume(opt.checkpoint);
    Model kept = m;
    int64_t kept_step = t.adam.step;
    bool stopped = false;
    nlohmann::json history = nlohmann::json::array();
    auto check = [&](Trainer& tr) {
      double ppl = held_out_ppl(m, split, "guard");
      bool ok = ppl <= base * (1 + tolerance);
      history.push_back({{"step", tr.adam.step}, {"guard_ppl", ppl}, {"loss", tr.log.back().loss},
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
    const double after = held_out_ppl(m, split, "guard");
    auto ranges_after = site_ranges(m, guard, f.opt.batch, q.sites, q.k);
    write_lm_outputs(m, t, f);

    nlohmann::json rec = {
        {"method", "quanttune"},
        {"spec", "methods.md §4.2-4.4"},
        {"model", path},
        {"output", f.out},
        {"k", q.k},
        {"lambda", q.lambda},
        {"eps", q.eps},
        {"sites", nlohmann::json::array()},
        {"task_loss", "next-token cross-entropy"},
        {"optimizer", {{"name", "adamw"}, {"lr", opt.schedule.lr}, {"min_lr", opt.schedule.min_lr},
                       {"warmup_steps", opt.schedule.warmup}, {"schedule", "linear warm-up, cosine decay"},
                       {"weight_decay", opt.adam.weight_decay}, {"beta1", opt.adam.beta1}, {"beta2", opt.adam.beta2},
                       {"eps", opt.adam.eps}, {"clip", opt.clip}}},
        {"steps", opt.steps},
        {"steps_done", t.adam.step},
        {"batch", opt.batch},
        {"ctx", f.ctx},
        {"seed", opt.seed},
        {"threads", num_threads()},
        {"fake_quant", false},
        {"pool", {{"data", f.data}, {"first_line", split.first_line}, {"fit_lines", split.fit.size()},
                  {"guard_first_line", split.held.offset}, {"guard_lines", split.held.limit}}},
        {"guard", {{"metric", "ppl (lines protocol)"}, {"tolerance", tolerance}, {"every", guard_every},
                   {"before", base}, {"after", after}, {"stopped", stopped}, {"kept_step", kept_step},
                   {"history", history}}},
        {"sites_before", to_json(ranges_before)},
        {"sites_after", to_json(ranges_after)},
    };
    for (Site s : q.sites) rec["sites"].push_back(site_name(s));
    std::string json_path = std::filesystem::path(f.out).replace_extension(".quanttune.json").string();
    write_json(json_path, rec);

    fmt::print("{}: {} of {} steps{}, guard PPL {:.4f} -> {:.4f}; record in {}\n", f.out, kept_step, opt.steps,
               stopped ? " (stopped by the guard, rolled back)" : "", base, after, json_path);
    fmt::print("  {:<8} {:>5} {:>9} {:>9} {:>10} {:>10}\n", "site", "layer", "DR", "DR'", "SQNR8", "SQNR8'");
    for (size_t i = 0; i < ranges_before.size(); i++) {
      const SiteRange &a = ranges_before[i], &b = ranges_after[i];
      fmt::print("  {:<8} {:>5} {:>9.3f} {:>9.3f} {:>8.2f}dB {:>8.2f}dB\n", site_name(a.site), a.layer, a.dr, b.dr,
                 a.sqnr_db, b.sqnr_db);
    }
  });
}

}  // namespace tq::cli
