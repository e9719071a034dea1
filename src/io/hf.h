// Hugging Face directories: config.json, model.safetensors (or a sharded
// index), and a tokenizer. A family is a table: the config keys it reads and
// the map from its tensor names to ours.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "nn/model.h"

namespace tq {

// All safetensors shards of a directory, name → tensor.
struct HfWeights {
  std::vector<SafetensorsFile> files;
  const SafeTensor* find(const std::string& name) const;
  const SafetensorsFile& owner(const SafeTensor* t) const;
  int64_t total_values() const;
};
HfWeights read_hf_weights(const std::string& dir);

// How one of our tensors is built from HF tensors.
enum class HfTransform {
  none,
  transpose,    // stored [in, out] (GPT-2 Conv1D)
  split3_0,     // rows [0, n/3) of a fused [3·n, ...] tensor (or elements, for a bias)
  split3_1,
  split3_2,
};
struct HfNameRule {
  std::string ours;  // our name with {L} for the layer ("blk.{L}.attn_q.weight")
  std::string hf;    // HF name with {L} ("model.layers.{L}.self_attn.q_proj.weight")
  HfTransform tf = HfTransform::none;
  bool optional = false;
};

// Fills every tensor of an allocated model from the rules; tensors without a
// rule must be absent or optional.
void fill_from_rules(Model& m, const HfWeights& w, const std::vector<HfNameRule>& rules);

Tokenizer load_hf_tokenizer(const std::string& dir, const nlohmann::json& config);

}  // namespace tq
