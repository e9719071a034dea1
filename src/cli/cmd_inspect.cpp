// tquant inspect MODEL [--json FILE]: architecture, tensors, parameter count.
#include <fmt/format.h>

#include <map>

#include "cli/common.h"

namespace tq::cli {

static nlohmann::json describe(Model& m) {
  const Config& c = m.cfg;
  nlohmann::json j;
  j["arch"] = c.arch;
  j["dim"] = c.dim;
  j["layers"] = c.n_layers;
  j["heads"] = c.n_heads;
  j["kv_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden"] = c.hidden;
  j["vocab"] = c.vocab;
  j["outputs"] = c.n_out;
  j["max_seq"] = c.max_seq;
  j["norm"] = to_string(c.norm);
  j["activation"] = std::string(to_string(c.act)) + (c.gated ? " (gated)" : "");
  j["positions"] = to_string(c.pos);
  j["post_norm"] = c.post_norm;
  j["causal"] = c.causal;
  j["tied_head"] = c.tied_head;
  j["parameters"] = parameter_count(m);
  j["tokenizer"] = m.tok.empty() ? "none" : fmt::format("{} pieces", m.tok.size());
  nlohmann::json ts = nlohmann::json::array();
  for (auto& nt : named_tensors(m)) ts.push_back({{"name", nt.name}, {"shape", nt.t->shape}, {"dtype", "f32"}});
  j["tensors"] = ts;
  return j;
}

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "show a model's architecture, tensors and parameter count");
  static std::string path, json_out;
  static Common common;
  cmd->add_option("model", path, "GGUF file, llama2.c .bin, Hugging Face or tquant directory")->required();
  cmd->add_option("--json", json_out, "write the description as JSON to FILE ('-' for stdout)");
  add_common(cmd, common);
  cmd->callback([] {
    Model m = load(path, common);
    nlohmann::json j = describe(m);
    if (!json_out.empty()) {
      write_json(json_out, j);
      if (json_out == "-") return;
    }
    fmt::print("{}: {} ({} parameters)\n", path, j["arch"].get<std::string>(), j["parameters"].get<int64_t>());
    for (const char* k : {"dim", "layers", "heads", "kv_heads", "head_dim", "hidden", "vocab", "outputs", "max_seq",
                          "norm", "activation", "positions", "post_norm", "causal", "tied_head", "tokenizer"})
      fmt::print("  {:<11} {}\n", k, j[k].dump());
    fmt::print("  tensors ({}):\n", j["tensors"].size());
    for (auto& t : j["tensors"])
      fmt::print("    {:<32} {}\n", t["name"].get<std::string>(), t["shape"].dump());
  });
}

}  // namespace tq::cli
