// The QuantPlan: for every weight and every site, its quantizer, and the
// passes that produced it. It is data: saved with the output, printed in the
// report, read back by eval and the runtime.
#pragma once
#include <nlohmann/json.hpp>
#include <map>
#include <string>

#include "core/json.h"
#include "nn/forward.h"
#include "quant/ggml_fit.h"
#include "quant/quantizer.h"

namespace tq {

struct QuantPlan {
  std::map<std::string, QuantSpec> weights;  // by tensor name ("blk.0.attn_q.weight")
  std::map<std::string, QuantSpec> sites;    // by site key ("blk.0.qkv_in", "head_in")
  // Weights stored in a ggml type (the GGUF recipes): the encoded tensor, which the model's
  // weight decodes from and the GGUF export writes as it is. plan.json names the type; the
  // bytes are kept in model.safetensors.
  std::map<std::string, GgmlTensor> ggml;
  nlohmann::json passes = nlohmann::json::array();  // [{"pass": name, params...}] in order
  nlohmann::json notes = nlohmann::json::object();  // facts passes record (rules used, fold errors)

  // with_weight_params: include weight scales/zeros (large); outputs store them in safetensors instead.
  nlohmann::json to_json(bool with_weight_params = false) const;
  static QuantPlan from_json(const JsonAt& j);  // every spec checked (spec_from_json)
};

nlohmann::json spec_to_json(const QuantSpec& s, bool with_params = true);
// A spec with its values checked: positive steps, a zero point per step when asymmetric, 2 to 8 bits
// when enabled, a pre_shift as wide as pre_inv. Sizes against a model: check_plan_sites.
QuantSpec spec_from_json(const JsonAt& j);
// Checks the plan's sites against a model's config: known keys, and static steps and pre-transforms as wide as their site.
void check_plan_sites(const QuantPlan& plan, const Config& c, const std::string& source);

// Fake-quantizes every planned site in the forward (simulation).
struct SimHook : Hooks {
  explicit SimHook(const QuantPlan& plan, int n_layers);
  SimHook(QuantPlan&&, int) = delete;  // it keeps a reference: a temporary would dangle
  void forward(Site site, int layer, float* x, int rows, int cols) override;
  int64_t saturated = 0;  // values clamped by static ranges (counted, never silent)

 private:
  std::vector<std::array<const QuantSpec*, kNumSites>> specs_;  // [layer + 1][site]
};

// The model with every planned weight replaced by its quantize-dequantize value.
Model simulate_weights(const Model& m, const QuantPlan& plan);

// Bits per weight over the linear weights (payload + per-group/row parameters in f16+f16 or f32;
// ggml-typed weights: their encoded bytes), and the bytes of the whole model when stored as the
// plan says (other tensors f32).
struct SizeInfo {
  double bits_per_weight = 32;
  int64_t model_bytes = 0, fp32_bytes = 0;
};
SizeInfo plan_size(const Model& m, const QuantPlan& plan);

}  // namespace tq
