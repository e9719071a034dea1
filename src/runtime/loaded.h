// Loading a model to run it: any supported path (io/load.h) and, for a tquant
// output directory, its plan, run on the integer kernels (runtime.h) or, with
// simulate, as fake quantization in float (the plan's SimHook).
#pragma once
#include <optional>
#include <string>

#include "io/load.h"
#include "quant/plan.h"
#include "runtime/runtime.h"

namespace tq {

struct Loaded {
  Model model;
  std::optional<QuantPlan> plan;
  std::optional<Runtime> runtime;
  std::optional<SimHook> sim;
  Hooks& hooks();               // no_hooks() for a float model
  int64_t saturated() const;    // activation values clamped by static ranges so far
  std::string mode() const;     // "fp32", "integer" or "simulate"
};
// The model, and the plan of a tquant directory (not yet prepared to run).
Loaded load_with_plan(const std::string& path, const LoadOptions& opt = {});
// A planned model gets the integer runtime (fallback notices on stderr), or the
// simulation hook with simulate. Nothing for a float model.
void prepare_run(Loaded& l, bool simulate);

}  // namespace tq
