// Hugging Face directories: config.json, model.safetensors (or a sharded
// index), and a tokenizer. A family is a table: the config keys it reads and
// the map from its tensor names to ours.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "io/safetensors.h"
#include "nn/model.h"

namespace tq {

// All safetensors shards of a directory, name → tensor.
struct HfWeights {
  std::vector<SafetensorsFile> files;
  // Checkpoints saved from the base model (GPT-2's own, BertModel) lack the task
  // model's prefix ("transformer.", "bert."): names beginning with base_prefix are
  // then also looked up without it.
  std::string base_prefix;
  bool lazy = false;  // float matrices the rules take as they are stay stored (LoadOptions::lazy)
  const SafeTensor* find(const std::string& name) const;
  const SafetensorsFile& owner(const SafeTensor* t) const;
  int64_t total_values() const;
};
HfWeights read_hf_weights(const std::string& dir, bool lazy = false);

// How one of our tensors is built from HF tensors.
enum class HfTransform {
  none,
  transpose,  // stored [in, out] (GPT-2 Conv1D)
  flatten,    // a convolution kernel [out, C, kh, kw] as a linear [out, C·kh·kw] over (C, H, W) patches
};
struct HfNameRule {
  std::string ours;  // our name with {L} for the layer ("blk.{L}.attn_q.weight")
  std::string hf;    // HF name with {L} ("model.layers.{L}.self_attn.q_proj.weight")
  HfTransform tf = HfTransform::none;
  bool optional = false;
  int split = -1;    // 0, 1, 2: that third of the rows (after tf) of a fused q|k|v tensor, or of its bias
};

// Fills every tensor of an allocated model from the rules; tensors without a
// rule must be absent or optional. Leading dimensions of size 1 in the file
// are dropped ([1, 1, D] class token, [1, S, D] positions).
void fill_from_rules(Model& m, const HfWeights& w, const std::vector<HfNameRule>& rules);

// A linear applied before one of ours, folded into it at load (W = W·pre.W,
// b = W·pre.b + b), computed in double and rounded once.
struct HfPreLinear {
  std::string ours;  // our linear with {L} ("blk.{L}.attn_q")
  std::string hf;    // the earlier HF linear with {L}: its .weight [in, in'] and .bias
};
void fold_pre_linears(Model& m, const HfWeights& w, const std::vector<HfPreLinear>& folds);

// Keys of config.json, with their range checked; bad_input naming the key when mistyped (or absent without fallback).
int hf_int(const nlohmann::json& j, const char* key, int fallback = INT32_MIN);  // in [0, 2^30]
float hf_float(const nlohmann::json& j, const char* key, float fallback);
bool hf_bool(const nlohmann::json& j, const char* key, bool fallback);
std::string hf_string(const nlohmann::json& j, const char* key, const std::string& fallback);

// The families (hf_families.cpp), given the parsed config.json.
Model load_hf_opt(const std::string& dir, const nlohmann::json& config, bool lazy);
Model load_hf_gpt2(const std::string& dir, const nlohmann::json& config);
Model load_hf_bert(const std::string& dir, const nlohmann::json& config);
Model load_hf_vit(const std::string& dir, const nlohmann::json& config);

Tokenizer load_hf_tokenizer(const std::string& dir, const nlohmann::json& config);

// Writing HF directories (the export and generated models).
// The LLaMA family's rules (Mistral and Qwen2 share them), and the HF name of one of our tensors
// under rules (nullopt: no rule holds it).
const std::vector<HfNameRule>& llama_hf_rules();
std::optional<std::string> hf_name(const std::vector<HfNameRule>& rules, const std::string& ours, int n_layers);
// config.json of a LLaMA, Mistral (sliding window) or Qwen2 model.
nlohmann::json hf_llama_config(const Model& m, const std::string& torch_dtype);
// tokenizer.json for a SentencePiece-kind tokenizer (a BPE model with byte fallback whose merges
// rank the pieces by score, as load_hf_tokenizer reads it back) or a GPT-2 byte-level BPE.
nlohmann::json hf_tokenizer_json(const Tokenizer& t);

}  // namespace tq
