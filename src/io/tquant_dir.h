// The tquant output directory: a quantized model as data.
//   config.json        architecture (Config), tokenizer, class labels
//   plan.json          the QuantPlan (passes, per-site quantizers, weight quantizer kinds)
//   model.safetensors  float tensors by name; quantized weights as integer codes
//                      ("<name>": I8/U8) with "<name>.scale" and "<name>.zero" (F32)
// Loading it gives the model whose weights are exactly the dequantized codes,
// and the plan whose sites the simulation hook applies.
#pragma once
#include <optional>
#include <string>

#include "core/json.h"
#include "nn/model.h"
#include "quant/plan.h"

namespace tq {

bool is_tquant_dir(const std::string& path);
// fp holds the float (possibly folded) weights the plan's weight quantizers apply to.
void save_tquant_dir(const std::string& dir, const Model& fp, const QuantPlan& plan,
                     const nlohmann::json& extra = nlohmann::json::object());
Model load_tquant_dir(const std::string& dir, QuantPlan* plan = nullptr);

nlohmann::json config_to_json(const Config& c);
Config config_from_json(const JsonAt& j);
nlohmann::json tokenizer_to_json(const Tokenizer& t);
Tokenizer tokenizer_from_json(const JsonAt& j);

}  // namespace tq
