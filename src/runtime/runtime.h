// The integer runtime (issue 9): a quantized model's linears run on the
// kernels of src/kernels (docs/methods.md §0.4), inside the one forward.
//
// attach_runtime() packs every weight the plan quantized, once, into the
// layout its kernel reads and gives its Linear an executor (Linear::exec),
// chosen per linear:
//   int8    K1–K3. The weight is uniform per row or tensor, ≤ 8 bits, integer
//           zero points; the site feeding it is quantized per tensor statically
//           (asymmetric: K1, u8 codes with zero point; symmetric: s8 codes, which
//           for OutlierTune's step-folded sites is step 1, i.e. K2), per tensor
//           dynamically, or per token dynamically and symmetrically (K3). The
//           executor quantizes the activation itself, with the quantizer
//           functions the simulation uses, so the codes are the same.
//   lowbit  K4 weight-only: any other uniform weight of ≤ 8 bits whose groups
//           are multiples of 32 (rows count as one group); 5–7-bit codes ride in
//           the 8-bit layout. Scales and zeros go to fp16, as K4 stores them.
//           It reads the activation as the site hook leaves it: float, or
//           fake-quantized when the site has a quantizer int8 cannot run.
//   float   the rest (log quantizers, groups the kernels cannot tile): the
//           quantize-dequantize weight through BLAS, exactly as in simulation,
//           with a one-line notice.
// A site is given to the int8 executors only when every linear it feeds is
// one. hooks() fake-quantizes every other planned site (q, k, v, probs, and
// sites of fallbacks) and applies every pre-transform (post-norm folds).
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu.h"
#include "nn/model.h"
#include "quant/plan.h"

namespace tq {

struct RuntimeOptions {
  bool drop_float = true;  // free the f32 values of packed weights (shapes stay)
  Isa isa = Isa::automatic;
};

struct Runtime {
  QuantPlan sim_plan;             // what the hook still does at the sites
  std::unique_ptr<SimHook> sim;   // over sim_plan
  int n_int8 = 0, n_lowbit = 0, n_float = 0;  // linears by executor
  std::vector<std::string> notices;  // one line per linear that falls back to float
  std::shared_ptr<std::atomic<int64_t>> clamped = std::make_shared<std::atomic<int64_t>>(0);  // by int8 executors

  Hooks& hooks() { return *sim; }
  // Activation values clamped by static ranges, in the hook and in the executors.
  int64_t saturated() const { return sim->saturated + clamped->load(); }
  std::string summary() const;  // "int8 35, lowbit 0, float 0 linears"
};

// Changes m: packed linears get executors (their f32 values dropped unless
// told otherwise), other planned weights become their quantize-dequantize
// values. m's weights are the float weights the plan applies to, or the
// dequantized codes load_tquant_dir gives (re-quantizing them gives the same codes).
Runtime attach_runtime(Model& m, const QuantPlan& plan, const RuntimeOptions& opt = {});

// Bytes of the model as it runs: f32 tensors still held plus the executors.
int64_t runtime_bytes(const Model& m);

}  // namespace tq
