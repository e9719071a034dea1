// Shared pieces of the command line: options every command takes, model
// loading, JSON output. Each subcommand lives in its own cmd_*.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "io/load.h"
#include "nn/model.h"
#include "runtime/loaded.h"

namespace tq::cli {

struct Common {
  int threads = 0;
  std::string tokenizer;
  bool lazy = false;  // matrices stay in their file's type (commands that only run the forward)
};

void add_common(CLI::App* cmd, Common& c);
Model load(const std::string& path, const Common& c);
// load_with_plan (runtime/loaded.h) with the threads and tokenizer of the flags.
Loaded load_with_plan(const std::string& path, const Common& c);
// Writes JSON to a file (atomically) or to stdout for "-".
void write_json(const std::string& dest, const nlohmann::json& j);

// Registration functions, one per subcommand file.
void register_inspect(CLI::App& app);
void register_run(CLI::App& app);
void register_eval(CLI::App& app);
void register_bench(CLI::App& app);
void register_quantize(CLI::App& app);
void register_diagnose(CLI::App& app);
void register_train(CLI::App& app);
void register_finetune(CLI::App& app);
void register_quanttune(CLI::App& app);
void register_export(CLI::App& app);
void register_stress(CLI::App& app);
void register_generate(CLI::App& app);

}  // namespace tq::cli
