// The hqq pass (uniform HQQ, docs/methods.md §3.2, §5.8) and what the mixed-precision
// passes built on it share: boost.cpp (SensiBoost / KurtBoost) and budget.cpp
// (tquant's allocator) put HQQ rungs on the block linears through these.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "quant/hqq.h"

namespace tq {

// A quantized linear of the blocks.
struct LinearRef {
  int layer;
  Slot slot;
  const Tensor* w;
  std::string name() const { return weight_name(layer, slot); }
};
// Every linear of every block, in layer then table order.
std::vector<LinearRef> block_weights(Model& m);
// The solver settings of a pass's "iters" parameter.
HqqOptions hqq_options(const nlohmann::json& p);
// Plans each linear at its rung. The fits are independent: under mpirun they split over the
// ranks, and every rank gets every fitted spec (core/ranks.h).
void plan_rungs(PassContext& ctx, const std::vector<std::pair<LinearRef, Rung>>& linears, const HqqOptions& o);
// Records the HQQ settings, both bits-per-weight figures over the block linears and
// the tensors whose last group is shorter (plan.notes.hqq).
void note_hqq(PassContext& ctx, const HqqOptions& o);
// The ladder's rung names ("b2g128", ...), the choices of a rung parameter.
std::vector<std::string> ladder_names();

}  // namespace tq
