// tquant eval MODEL --data SPEC: perplexity (and KLD/top-1 against --compare REF).
#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "eval/perplexity.h"

namespace tq::cli {

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "measure perplexity or accuracy, optionally against a reference model");
  static std::string path, data, compare, json_out;
  static DataSpec spec;
  static Common common;
  cmd->add_option("model", path, "model to evaluate")->required();
  cmd->add_option("--data", data, "text FILE, mnist:DIR or sst2:FILE")->required();
  cmd->add_option("--protocol", spec.protocol, "text scoring: lines (one sequence per line) or chunks (llama.cpp)")
      ->check(CLI::IsMember({"lines", "chunks"}));
  cmd->add_option("--ctx", spec.ctx, "context: max tokens per line, or the window size for chunks")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--offset", spec.offset, "skip the first N sequences")->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", spec.limit, "use at most N sequences")->check(CLI::NonNegativeNumber);
  cmd->add_option("--compare", compare, "reference model: report KL divergence and top-1 agreement against it");
  cmd->add_option("--json", json_out, "write figures as JSON to FILE ('-' for stdout)");
  add_common(cmd, common);
  cmd->callback([] {
    Model m = load(path, common);
    DataSpec d = parse_data_spec(data);
    d.protocol = spec.protocol;
    d.ctx = spec.ctx;
    d.offset = spec.offset;
    d.limit = spec.limit;
    std::optional<Model> ref;
    if (!compare.empty()) ref = load(compare, common);
    TQ_CHECK_INPUT(d.kind == "text", "data kind '{}' needs the model-families work", d.kind);
    auto seqs = text_sequences(m.tok, d);
    LmEval r = eval_lm(m, seqs, no_hooks(), ref ? &*ref : nullptr);
    nlohmann::json j = r.json();
    j["model"] = path;
    j["data"] = data;
    j["protocol"] = d.protocol;
    j["sequences"] = seqs.size();
    if (!json_out.empty()) write_json(json_out, j);
    if (json_out != "-") {
      fmt::print("{} on {} ({} protocol, {} sequences, {} tokens)\n", path, data, d.protocol, seqs.size(), r.tokens);
      fmt::print("  PPL {:.4f} ± {:.4f}   NLL {:.6f}\n", r.ppl(), r.ppl_stderr(), r.nll());
      if (ref)
        fmt::print("  vs {}: KLD mean {:.6f}  p99 {:.6f}  top-1 agreement {:.2f}%\n", compare, r.kld_mean(),
                   r.kld_p99(), 100 * r.top1_agree());
    }
  });
}

}  // namespace tq::cli
