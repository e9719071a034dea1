// Shared pieces of the command line: options every command takes, model
// loading, JSON output. Each subcommand lives in its own cmd_*.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "io/load.h"
#include "nn/model.h"
#include "quant/plan.h"
#include "runtime/runtime.h"

#include <optional>

namespace tq::cli {

struct Common {
  int threads = 0;
  std::string tokenizer;
  bool lazy = false;  // matrices stay in their file's type (commands that only run the forward)
};

void add_common(CLI::App* cmd, Common& c);
Model load(const std::string& path, const Common& c);
// A model and, for a tquant output directory, its plan and how it runs
// (prepare_run): on the integer runtime, or with the fake-quant simulation.
struct Loaded {
  Model model;
  std::optional<QuantPlan> plan;
  std::optional<Runtime> runtime;
  std::optional<SimHook> sim;
  Hooks& hooks();               // no_hooks() for a float model
  int64_t saturated() const;    // activation values clamped by static ranges so far
  std::string mode() const;     // "fp32", "integer" or "simulate"
};
Loaded load_with_plan(const std::string& path, const Common& c);
// A planned model gets the integer runtime (fallback notices on stderr), or the
// simulation hook with simulate. Nothing for a float model.
void prepare_run(Loaded& l, bool simulate);
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
void register_generate(CLI::App& app);

}  // namespace tq::cli
