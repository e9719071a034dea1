// tquant eval MODEL --data SPEC: perplexity of LMs on text, accuracy of classifiers on
// mnist:DIR or sst2:FILE (and KLD/top-1 against --compare REF).
#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "eval/accuracy.h"
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
    nlohmann::json j;
    if (d.kind == "text") {
      auto seqs = text_sequences(m.tok, d);
      LmEval r = eval_lm(m, seqs, no_hooks(), ref ? &*ref : nullptr);
      j = r.json();
      j["protocol"] = d.protocol;
      j["sequences"] = seqs.size();
      if (json_out != "-") {
        fmt::print("{} on {} ({} protocol, {} sequences, {} tokens)\n", path, data, d.protocol, seqs.size(), r.tokens);
        fmt::print("  PPL {:.4f} ± {:.4f}   NLL {:.6f}\n", r.ppl(), r.ppl_stderr(), r.nll());
        if (ref)
          fmt::print("  vs {}: KLD mean {:.6f}  p99 {:.6f}  top-1 agreement {:.2f}%\n", compare, r.kld_mean(),
                     r.kld_p99(), 100 * r.top1_agree());
      }
    } else {
      std::vector<ClassBatch> batches = d.kind == "mnist" ? image_batches(m.cfg, read_mnist(d.path, d.offset, d.limit))
                                                          : text_batches(m, read_sst2(d.path, d.offset, d.limit));
      ClassEval r = eval_classifier(m, batches, no_hooks(), ref ? &*ref : nullptr);
      j = r.json();
      if (json_out != "-") {
        fmt::print("{} on {} ({} examples)\n", path, data, r.total);
        fmt::print("  accuracy {:.2f}% ({}/{})\n", 100 * r.accuracy(), r.correct, r.total);
        if (ref)
          fmt::print("  vs {}: KLD mean {:.6f}  p99 {:.6f}  top-1 agreement {:.2f}%\n", compare,
                     j["kld_mean"].get<double>(), j["kld_p99"].get<double>(), 100 * r.top1_agree());
      }
    }
    j["model"] = path;
    j["data"] = data;
    if (!json_out.empty()) write_json(json_out, j);
  });
}

}  // namespace tq::cli
