// tquant inspect MODEL [--json FILE]: architecture, tensors (shape and stored
// type), parameter count, bytes on disk. The model is loaded lazily: nothing is
// converted, so a model of any size is inspected in a moment.
#include <fmt/format.h>

#include <filesystem>
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
  j["sliding_window"] = c.sliding_window;
  j["tied_head"] = c.tied_head;
  j["parameters"] = parameter_count(m);
  j["tokenizer"] = m.tok.empty() ? "none" : fmt::format("{} pieces", m.tok.size());
  nlohmann::json ts = nlohmann::json::array();
  std::map<std::string, int64_t> by_type;
  for (auto& nt : named_tensors(m)) {
    ts.push_back({{"name", nt.name}, {"shape", nt.t->shape}, {"dtype", nt.t->type_name()},
                  {"bytes", nt.t->stored_bytes()}});
    by_type[nt.t->type_name()] += nt.t->numel();
  }
  j["tensors"] = ts;
  j["parameters_by_type"] = by_type;
  return j;
}

// Bytes of the model on disk: the file, or every file of the directory.
static int64_t disk_bytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return (int64_t)fs::file_size(path, ec);
  int64_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(path, ec))
    if (e.is_regular_file(ec)) n += (int64_t)e.file_size(ec);
  return n;
}

void register_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "show a model's architecture, tensors and parameter count");
  static std::string path, json_out;
  static Common common;
  cmd->add_option("model", path, "GGUF file, llama2.c .bin, Hugging Face or tquant directory")->required();
  cmd->add_option("--json", json_out, "write the description as JSON to FILE ('-' for stdout)");
  add_common(cmd, common);
  cmd->callback([] {
    LoadOptions lo{common.tokenizer};
    lo.lazy = true;
    Model m = load_model(path, lo);
    nlohmann::json j = describe(m);
    j["file_bytes"] = disk_bytes(path);
    if (!json_out.empty()) {
      write_json(json_out, j);
      if (json_out == "-") return;
    }
    fmt::print("{}: {} ({} parameters, {} bytes on disk)\n", path, j["arch"].get<std::string>(),
               j["parameters"].get<int64_t>(), j["file_bytes"].get<int64_t>());
    for (const char* k : {"dim", "layers", "heads", "kv_heads", "head_dim", "hidden", "vocab", "outputs", "max_seq",
                          "norm", "activation", "positions", "post_norm", "causal", "tied_head", "tokenizer"})
      fmt::print("  {:<11} {}\n", k, j[k].dump());
    if (m.cfg.sliding_window > 0) fmt::print("  {:<11} {}\n", "window", m.cfg.sliding_window);
    std::string types;
    for (auto& [type, n] : j["parameters_by_type"].items()) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", type, n.get<int64_t>());
    fmt::print("  {:<11} {}\n", "types", types);
    fmt::print("  tensors ({}):\n", j["tensors"].size());
    for (auto& t : j["tensors"])
      fmt::print("    {:<32} {:<14} {:<5} {:>12} bytes\n", t["name"].get<std::string>(), t["shape"].dump(),
                 t["dtype"].get<std::string>(), t["bytes"].get<int64_t>());
  });
}

}  // namespace tq::cli
