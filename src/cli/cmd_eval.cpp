// tquant eval MODEL --data SPEC: perplexity or accuracy, and against
// --compare REF the divergence figures. A tquant output directory runs on the
// integer kernels (runtime/runtime.h), or with --simulate its plan's fake-quant
// simulation.
#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/ranks.h"
#include "core/threads.h"
#include "eval/evaluate.h"

namespace tq::cli {

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "measure perplexity or accuracy, optionally against a reference model");
  static std::string path, data, compare, json_out, protocol;
  static int ctx = 0;
  static int64_t offset = -1, limit = -1;
  static Common common{0, "", true};  // lazy: the forward runs on the weights as stored
  static bool simulate = false;
  cmd->add_option("model", path, "model to evaluate (a tquant directory runs on the integer kernels)")->required();
  cmd->add_flag("--simulate", simulate, "run a tquant directory with fake-quant simulation instead of the integer kernels");
  cmd->add_option("--data", data, "text FILE, mnist:DIR or sst2:FILE, optionally ?from=&to=&offset=&limit=")
      ->required();
  cmd->add_option("--protocol", protocol, "text scoring: lines (one sequence per line) or chunks (llama.cpp)")
      ->check(CLI::IsMember({"lines", "chunks"}));
  cmd->add_option("--ctx", ctx, "context: max tokens per line, or the window size for chunks")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--offset", offset, "skip the first N sequences")->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", limit, "use at most N sequences")->check(CLI::NonNegativeNumber);
  cmd->add_option("--compare", compare, "reference model: report KL divergence and top-1 agreement against it");
  cmd->add_option("--json", json_out, "write figures as JSON to FILE ('-' for stdout)");
  add_common(cmd, common);
  cmd->callback([] {
    DataSpec d = parse_data_spec(data);
    if (!protocol.empty()) d.protocol = protocol;
    if (ctx) d.ctx = ctx;
    if (offset >= 0) d.offset = offset;
    if (limit >= 0) d.limit = limit;
    Loaded m = load_with_plan(path, common);
    check_finite_weights(m.model, path);
    prepare_run(m, simulate);
    std::optional<Loaded> ref;
    if (!compare.empty()) {
      ref = load_with_plan(compare, common);
      check_finite_weights(ref->model, compare);
      prepare_run(*ref, simulate);
    }
    EvalResult r = evaluate(m.model, d, m.hooks(), ref ? &ref->model : nullptr, ref ? &ref->hooks() : nullptr);
    nlohmann::json j = r.json;
    j["model"] = path;
    j["data"] = data;
    j["runtime"] = m.mode();
    if (m.runtime) j["executors"] = {{"int8", m.runtime->n_int8}, {"lowbit_a8", m.runtime->n_lowbit_a8},
                                     {"lowbit", m.runtime->n_lowbit},
                                     {"float", m.runtime->n_float}, {"notices", m.runtime->notices}};
    const int64_t saturated = ranks::sum_all(m.saturated());  // each rank saw its share of the data
    if (m.plan) j["saturated"] = saturated;
    if (!json_out.empty()) write_json(json_out, j);
    if (json_out == "-") return;
    fmt::print("{} on {}{}\n", path, data, m.plan ? fmt::format(" ({})", m.runtime ? m.runtime->summary() : "simulated") : "");
    if (r.metric == "ppl") {
      fmt::print("  PPL {:.4f} ± {:.4f}   NLL {:.6f}   ({} sequences, {} tokens)\n", r.value,
                 j["ppl_stderr"].get<double>(), j["nll"].get<double>(), j["sequences"].get<int64_t>(),
                 j["tokens"].get<int64_t>());
    } else {
      fmt::print("  accuracy {:.2f}% ({}/{})\n", 100 * r.value, j["correct"].get<int64_t>(), j["total"].get<int64_t>());
    }
    if (ref)
      fmt::print("  vs {} ({} {:.4f}): KLD mean {:.6f}  p99 {:.6f}  top-1 agreement {:.2f}%\n", compare, r.metric,
                 r.ref_value, j["kld_mean"].get<double>(), j["kld_p99"].get<double>(),
                 100 * j["top1_agree"].get<double>());
    if (saturated) fmt::print("  {} activation values clamped by static ranges\n", saturated);
  });
}

}  // namespace tq::cli
