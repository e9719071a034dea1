// tquant quantize MODEL --recipe NAME|FILE --calib SPEC -o OUT [--report DIR]:
// runs the recipe's passes, writes the quantized model, and reports what was lost.
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>

#include "cli/common.h"
#include "core/error.h"
#include "core/threads.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "io/tquant_dir.h"
#include "passes/pass.h"

namespace tq::cli {

static nlohmann::json parse_value(const std::string& v) {
  try {
    return nlohmann::json::parse(v);
  } catch (const nlohmann::json::exception&) {
    return v;  // a bare word is a string
  }
}

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "quantize a model with a recipe and report what was lost");
  static std::string path, recipe_name, calib, out, report_dir, eval_spec, calibrator, json_out;
  static std::vector<std::string> sets;
  static uint64_t seed = 0;
  static double budget = 0;
  static Common common;
  cmd->add_option("model", path, "model to quantize")->required();
  cmd->add_option("--recipe", recipe_name, "a built-in recipe (listed below, e.g. w8a8-outliertune) or a JSON recipe file")
      ->required();
  cmd->footer(recipe_help());
  cmd->add_option("--calib", calib, "calibration data: FILE[?from=0.9&limit=128], mnist:DIR, sst2:FILE");
  cmd->add_option("--calibrator", calibrator, "activation calibrator for every pass that takes one")
      ->check(CLI::IsMember({"minmax", "percentile", "mse", "kl", "pmse"}));
  cmd->add_option("--budget", budget,
                  "size budget in bits per weight of the block linears for the budget allocator (wB-budget); "
                  "bytes: --set budget_bytes=N")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--set", sets, "override a pass parameter: KEY=VALUE (repeatable)");
  cmd->add_option("-o,--output", out, "output directory (written atomically)")->required();
  cmd->add_option("--eval", eval_spec, "data to evaluate fp32 and quantized on (for the report)");
  cmd->add_option("--report", report_dir, "write report.json, report.md and report.html here");
  cmd->add_option("--json", json_out, "write the headline figures as JSON to FILE ('-' for stdout)");
  cmd->add_option("--seed", seed, "seed for sampling in passes");
  add_common(cmd, common);
  cmd->callback([] {
    // Everything that can be checked is checked before any work or any output.
    Recipe recipe = parse_recipe(recipe_name);
    if (!calibrator.empty()) override_param(recipe, "calibrator", calibrator);
    if (budget > 0) override_param(recipe, "budget", budget);
    for (auto& kv : sets) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) bad_input("--set needs KEY=VALUE, got '{}'", kv);
      override_param(recipe, kv.substr(0, eq), parse_value(kv.substr(eq + 1)));
    }
    std::optional<DataSpec> eval_data;
    if (!eval_spec.empty()) eval_data = parse_data_spec(eval_spec);
    Loaded src = load_with_plan(path, common);
    Model fp = std::move(src.model);
    CalibData cd;
    if (!calib.empty()) {
      cd = load_calib(parse_data_spec(calib), fp);
      cd.source = calib;
    }

    Model m = fp;
    QuantPlan plan;
    // A float model written by finetune or quanttune: the record of that run heads the new plan.
    if (src.plan && src.plan->weights.empty() && src.plan->sites.empty()) plan.passes = src.plan->passes;
    PassContext ctx{m, plan, cd, seed};
    fmt::print(stderr, "quantize: recipe {} on {}\n", recipe.name, path);
    const auto t0 = std::chrono::steady_clock::now();
    run_recipe(recipe, ctx);
    const double quantize_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);  // peak so far: loading, calibration data and the passes, before evaluation
    fmt::print(stderr, "quantize: recipe took {:.2f} s; peak memory {:.1f} MiB\n", quantize_s, ru.ru_maxrss / 1024.0);
    Model q = simulate_weights(m, plan);
    SizeInfo size = plan_size(m, plan);

    nlohmann::json headline = {{"fp32", {{"model_bytes", size.fp32_bytes}, {"bits_per_weight", 32}}},
                               {"quantized", {{"model_bytes", size.model_bytes},
                                              {"bits_per_weight", size.bits_per_weight}}}};
    nlohmann::json figures = {{"recipe", recipe.name}, {"model_bytes", size.model_bytes},
                              {"bits_per_weight", size.bits_per_weight}, {"fp32_bytes", size.fp32_bytes},
                              {"quantize_seconds", quantize_s}, {"peak_rss_bytes_after_quantize", (int64_t)ru.ru_maxrss * 1024}};
    if (plan.notes.contains("hqq")) {  // both accountings of HQQ's bits (docs/methods.md §3.2)
      figures["hqq_bits_per_weight"] = plan.notes["hqq"]["bits_per_weight"];
      headline["quantized"]["hqq_bits_per_weight"] = plan.notes["hqq"]["bits_per_weight"];
    }
    int64_t saturated = 0;
    if (eval_data) {
      SimHook sim(plan, q.cfg.n_layers);
      EvalResult e = evaluate(q, *eval_data, sim, &fp);
      saturated = sim.saturated;
      headline["metric"] = e.metric;
      headline["fp32"]["value"] = e.ref_value;
      headline["quantized"].update(e.json);
      headline["quantized"]["value"] = e.value;
      figures["eval"] = e.json;
      figures["fp32_" + e.metric] = e.ref_value;
      figures["saturated"] = saturated;
      fmt::print(stderr, "quantize: {} fp32 {:.4f} -> quantized {:.4f}; {} activation values clamped by static ranges\n",
                 e.metric, e.ref_value, e.value, saturated);
    }
    save_tquant_dir(out, m, plan, {{"recipe", recipe.name}, {"source", path}});
    fmt::print(stderr, "quantize: wrote {} ({} bytes as stored by the plan, {:.2f} bits/weight)\n", out,
               size.model_bytes, size.bits_per_weight);
    if (!report_dir.empty()) {
      CalibData probe = cd;
      if (probe.batches.size() > 16) probe.batches.resize(16);
      nlohmann::json sites = site_errors(q, plan, probe);
      Observer obs;
      if (!cd.empty()) run_calibration(fp, probe, obs);
      nlohmann::json r = {{"title", fmt::format("tquant: {} with {}", path, recipe.name)},
                          {"recipe", recipe.name},
                          {"passes", plan.passes},
                          {"headline", headline},
                          {"saturated", saturated},
                          {"weights", weight_errors(m, q, plan)},
                          {"sites", sites},
                          {"channels", channel_ranges(obs.stats)},
                          {"notes", plan.notes}};
      write_report(report_dir, r);
      fmt::print(stderr, "quantize: report in {}/report.html\n", report_dir);
    }
    if (!json_out.empty()) write_json(json_out, figures);
  });
}

}  // namespace tq::cli
