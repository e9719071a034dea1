// The tquant output directory: a quantized model as data.
//   config.json        architecture (Config), tokenizer, class labels; "format": "tquant-model-2"
//   plan.json          the QuantPlan (passes, per-site quantizers, weight quantizer kinds)
//   model.safetensors  float tensors by name; quantized weights as integer codes ("<name>":
//                      I8/U8, 4-bit codes two to a byte) with "<name>.scale" and "<name>.zero" (F32)
//   or, from a block-sequential run, blk.N.safetensors and rest.safetensors with
//   model.safetensors.index.json (Hugging Face's sharded layout).
// Loading it gives the model whose weights are exactly the dequantized codes,
// and the plan whose sites the simulation hook applies.
#pragma once
#include <optional>
#include <string>

#include "core/json.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "nn/model.h"
#include "quant/plan.h"

namespace tq {

bool is_tquant_dir(const std::string& path);
// fp holds the float (possibly folded) weights the plan's weight quantizers apply to.
void save_tquant_dir(const std::string& dir, const Model& fp, const QuantPlan& plan,
                     const nlohmann::json& extra = nlohmann::json::object());
// lazy: matrices stay in the file (float ones in their type, quantized ones as codes that
// decode row by row), as load_model's lazy option does for GGUF.
Model load_tquant_dir(const std::string& dir, QuantPlan* plan = nullptr, bool lazy = false);

// The pieces of save_tquant_dir for a model written a block at a time (quantize's
// block-sequential run): the tensors as model.safetensors holds them (a stored float
// tensor keeps its file's type), and the end of the run: the shards (each a
// safetensors file of encode_tensors, in the directory) indexed, config.json and
// plan.json written, the directory committed.
std::vector<SafeTensorOut> encode_tensors(const std::vector<NamedTensor>& tensors, const QuantPlan& plan);
void finish_tquant_dir(AtomicDir& out, const std::vector<std::string>& shards, const Model& fp,
                       const QuantPlan& plan, const nlohmann::json& extra = nlohmann::json::object());

nlohmann::json config_to_json(const Config& c);
Config config_from_json(const JsonAt& j);
nlohmann::json tokenizer_to_json(const Tokenizer& t);
Tokenizer tokenizer_from_json(const JsonAt& j);

}  // namespace tq
