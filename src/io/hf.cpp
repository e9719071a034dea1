#include "io/hf.h"

#include <map>

#include <cfloat>

#include "core/checked.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mmap.h"
#include "io/load.h"
#include "nn/block.h"

namespace tq {

HfWeights read_hf_weights(const std::string& dir, bool lazy) {
  HfWeights w;
  w.lazy = lazy;
  std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (file_exists(single)) {
    w.files.push_back(read_safetensors(single));
  } else if (file_exists(index)) {
    nlohmann::json j = read_json_file(index);
    std::map<std::string, int> shards;
    for (auto& [name, file] : JsonAt(j, index)["weight_map"].items()) {
      std::string f = file.string();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        bad_input("{}: shard name '{}' must be a plain file name", index, f);
      shards.emplace(f, 0);
    }
    for (auto& [f, _] : shards) w.files.push_back(read_safetensors(dir + "/" + f));
  } else {
    bad_input("{} has neither model.safetensors nor model.safetensors.index.json", dir);
  }
  return w;
}

const SafeTensor* HfWeights::find(const std::string& name) const {
  for (auto& f : files)
    if (auto* t = f.find(name)) return t;
  if (!base_prefix.empty() && name.rfind(base_prefix, 0) == 0) {
    for (auto& f : files)
      if (auto* t = f.find(name.substr(base_prefix.size()))) return t;
  }
  return nullptr;
}

const SafetensorsFile& HfWeights::owner(const SafeTensor* t) const {
  for (auto& f : files)
    for (auto& x : f.tensors)
      if (&x == t) return f;
  run_failed("tensor not owned by any shard");
}

int64_t HfWeights::total_values() const {
  int64_t n = 0;
  for (auto& f : files)
    for (auto& t : f.tensors) n += t.numel();
  return n;
}

static std::string subst(std::string s, int layer) {
  auto p = s.find("{L}");
  if (p != std::string::npos) s.replace(p, 3, std::to_string(layer));
  return s;
}

static Tensor apply_transform(Tensor t, const HfNameRule& r, const std::string& name) {
  if (r.tf == HfTransform::transpose) {
    TQ_CHECK_INPUT(t.ndim() == 2, "tensor {} should be a matrix to transpose", name);
    Tensor o({t.dim(1), t.dim(0)});
    for (int64_t i = 0; i < t.dim(0); i++)
      for (int64_t j = 0; j < t.dim(1); j++) o.data[j * t.dim(0) + i] = t.data[i * t.dim(1) + j];
    t = std::move(o);
  } else if (r.tf == HfTransform::flatten) {
    TQ_CHECK_INPUT(t.ndim() >= 2 && t.dim(0) > 0, "tensor {} of shape {} is not a kernel", name, shape_str(t.shape));
    t.shape = {t.dim(0), t.numel() / t.dim(0)};
  }
  if (r.split >= 0) {
    TQ_CHECK_INPUT(t.ndim() >= 1 && t.dim(0) > 0 && t.dim(0) % 3 == 0, "tensor {} of shape {} cannot be split in three",
                   name, shape_str(t.shape));
    int64_t rows = t.dim(0) / 3, per = t.numel() / t.dim(0);
    std::vector<int64_t> shape = t.shape;
    shape[0] = rows;
    Tensor o(shape);
    std::copy(t.data.begin() + r.split * rows * per, t.data.begin() + (r.split + 1) * rows * per, o.data.begin());
    t = std::move(o);
  }
  return t;
}

void fill_from_rules(Model& m, const HfWeights& w, const std::vector<HfNameRule>& rules) {
  std::map<std::string, const HfNameRule*> by_ours;
  for (auto& r : rules) by_ours[r.ours] = &r;
  auto rule_for = [&](const std::string& name, int& layer) -> const HfNameRule* {
    layer = -1;
    std::string key = name;
    if (auto split = split_block_key(name, m.cfg.n_layers)) {
      layer = split->first;
      key = "blk.{L}." + std::string(split->second);
    }
    auto it = by_ours.find(key);
    return it == by_ours.end() ? nullptr : it->second;
  };
  for (auto& nt : named_tensors(m)) {
    int layer;
    const HfNameRule* r = rule_for(nt.name, layer);
    if (!r) bad_input("no Hugging Face name is known for tensor {}", nt.name);
    std::string hf = subst(r->hf, layer);
    const SafeTensor* t = w.find(hf);
    if (!t) {
      if (!r->optional) bad_input("tensor {} is missing", hf);
      *nt.t = Tensor();  // an optional tensor (a bias) the checkpoint does not have
      continue;
    }
    const bool as_stored = w.lazy && r->tf == HfTransform::none && r->split < 0 && nt.t->ndim() >= 2;
    Tensor v = as_stored ? w.owner(t).stored(*t) : apply_transform(w.owner(t).read_f32(*t), *r, hf);
    while (v.ndim() > nt.t->ndim() && v.dim(0) == 1) v.shape.erase(v.shape.begin());
    if (v.shape != nt.t->shape)
      bad_input("tensor {} has shape {}, expected {}", hf, shape_str(t->shape), shape_str(nt.t->shape));
    *nt.t = std::move(v);
  }
}

void fold_pre_linears(Model& m, const HfWeights& w, const std::vector<HfPreLinear>& folds) {
  std::map<std::string, Tensor*> ours;
  for (auto& nt : named_tensors(m)) ours[nt.name] = nt.t;
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (auto& f : folds) {
      std::string name = subst(f.ours, l), pre = subst(f.hf, l);
      Tensor* W = ours.count(name + ".weight") ? ours[name + ".weight"] : nullptr;
      Tensor* b = ours.count(name + ".bias") ? ours[name + ".bias"] : nullptr;
      if (!W || !b) bad_input("{} needs a weight and a bias to fold {} into", name, pre);
      const SafeTensor *pw = w.find(pre + ".weight"), *pb = w.find(pre + ".bias");
      if (!pw || !pb) bad_input("tensor {}.weight or {}.bias is missing", pre, pre);
      Tensor W1 = w.owner(pw).read_f32(*pw), b1 = w.owner(pb).read_f32(*pb);
      const int64_t O = W->dim(0), C = W->dim(1);
      if (W1.shape != std::vector<int64_t>{C, C} || b1.shape != std::vector<int64_t>{C})
        bad_input("{} has shape {} and bias {}, expected [{}, {}] and [{}]", pre, shape_str(W1.shape),
                  shape_str(b1.shape), C, C, C);
      Tensor fw({O, C}), fb({O});
      for (int64_t o = 0; o < O; o++) {
        const float* wr = W->row(o);
        double acc_b = b->data[o];
        for (int64_t k = 0; k < C; k++) acc_b += (double)wr[k] * b1.data[k];
        fb.data[o] = (float)acc_b;
        for (int64_t c = 0; c < C; c++) {
          double acc = 0;
          for (int64_t k = 0; k < C; k++) acc += (double)wr[k] * W1.data[k * C + c];
          fw.data[o * C + c] = (float)acc;
        }
      }
      *W = std::move(fw);
      *b = std::move(fb);
    }
}

const std::vector<HfNameRule>& llama_hf_rules() {
  static const std::vector<HfNameRule> r = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"blk.{L}.attn_norm.weight", "model.layers.{L}.input_layernorm.weight"},
      {"blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight"},
      {"blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight"},
      {"blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight"},
      {"blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight"},
      {"blk.{L}.attn_q.bias", "model.layers.{L}.self_attn.q_proj.bias", HfTransform::none, true},
      {"blk.{L}.attn_k.bias", "model.layers.{L}.self_attn.k_proj.bias", HfTransform::none, true},
      {"blk.{L}.attn_v.bias", "model.layers.{L}.self_attn.v_proj.bias", HfTransform::none, true},
      {"blk.{L}.attn_output.bias", "model.layers.{L}.self_attn.o_proj.bias", HfTransform::none, true},
      {"blk.{L}.ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight"},
      {"blk.{L}.ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight"},
      {"blk.{L}.ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight"},
      {"blk.{L}.ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight"},
      {"blk.{L}.ffn_gate.bias", "model.layers.{L}.mlp.gate_proj.bias", HfTransform::none, true},
      {"blk.{L}.ffn_up.bias", "model.layers.{L}.mlp.up_proj.bias", HfTransform::none, true},
      {"blk.{L}.ffn_down.bias", "model.layers.{L}.mlp.down_proj.bias", HfTransform::none, true},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight", HfTransform::none, true},
      {"output.bias", "lm_head.bias", HfTransform::none, true},
  };
  return r;
}

std::optional<std::string> hf_name(const std::vector<HfNameRule>& rules, const std::string& ours, int n_layers) {
  int layer = -1;
  std::string key = ours;
  if (auto split = split_block_key(ours, n_layers)) {
    layer = split->first;
    key = "blk.{L}." + std::string(split->second);
  }
  for (auto& r : rules)
    if (r.ours == key) return subst(r.hf, layer);
  return std::nullopt;
}

nlohmann::json hf_llama_config(const Model& m, const std::string& torch_dtype) {
  const Config& c = m.cfg;
  const bool qwen2 = c.arch == "qwen2", mistral = !qwen2 && c.sliding_window > 0;
  nlohmann::json j = {{"architectures", {qwen2 ? "Qwen2ForCausalLM" : mistral ? "MistralForCausalLM" : "LlamaForCausalLM"}},
                      {"model_type", qwen2 ? "qwen2" : mistral ? "mistral" : "llama"},
                      {"hidden_size", c.dim}, {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads}, {"num_key_value_heads", c.n_kv_heads},
                      {"head_dim", c.head_dim}, {"intermediate_size", c.hidden}, {"vocab_size", c.vocab},
                      {"max_position_embeddings", c.max_seq}, {"rms_norm_eps", c.norm_eps},
                      {"rope_theta", c.rope_theta}, {"hidden_act", "silu"}, {"tie_word_embeddings", c.tied_head},
                      {"torch_dtype", torch_dtype}, {"bos_token_id", m.tok.bos}, {"eos_token_id", m.tok.eos}};
  if (mistral) j["sliding_window"] = c.sliding_window;
  if (qwen2 && c.sliding_window > 0) {  // one window on every layer: how load_hf_llama reads it back
    j["use_sliding_window"] = true;
    j["sliding_window"] = c.sliding_window;
    j["max_window_layers"] = 0;
  }
  return j;
}

int hf_int(const nlohmann::json& j, const char* key, int fallback) {
  JsonAt at(j, "config.json");
  if (fallback == INT32_MIN) return (int)at[key].integer(0, 1 << 30);
  return (int)at.integer(key, 0, 1 << 30, fallback);
}

float hf_float(const nlohmann::json& j, const char* key, float fallback) {
  return (float)JsonAt(j, "config.json").number(key, -FLT_MAX, FLT_MAX, fallback);
}

bool hf_bool(const nlohmann::json& j, const char* key, bool fallback) {
  return JsonAt(j, "config.json").boolean(key, fallback);
}

std::string hf_string(const nlohmann::json& j, const char* key, const std::string& fallback) {
  return JsonAt(j, "config.json").string(key, fallback);
}

// LLaMA and the families that are LLaMA with a switch: Mistral (a sliding window of
// attention), Qwen2 (biases on q, k and v: the optional rules below).
static Model load_hf_llama(const std::string& dir, const nlohmann::json& j, bool lazy, const std::string& family) {
  Model m;
  Config& c = m.cfg;
  c.arch = family == "qwen2" ? "qwen2" : "llama";
  c.dim = hf_int(j, "hidden_size");
  c.n_layers = hf_int(j, "num_hidden_layers");
  c.n_heads = hf_int(j, "num_attention_heads");
  c.n_kv_heads = hf_int(j, "num_key_value_heads", c.n_heads);
  c.hidden = hf_int(j, "intermediate_size");
  c.vocab = hf_int(j, "vocab_size");
  c.n_out = c.vocab;
  c.max_seq = hf_int(j, "max_position_embeddings", 2048);
  TQ_CHECK_INPUT(c.n_heads > 0 && c.dim % c.n_heads == 0, "config.json: hidden_size {} and {} heads", c.dim, c.n_heads);
  c.head_dim = hf_int(j, "head_dim", c.dim / c.n_heads);
  c.norm = NormKind::rms;
  c.norm_eps = hf_float(j, "rms_norm_eps", 1e-6f);
  c.rope_theta = hf_float(j, "rope_theta", 10000.0f);
  c.rope_layout = RopeLayout::halves;
  c.pos = PosKind::rope;
  std::string act = hf_string(j, "hidden_act", "silu");
  if (act != "silu") bad_input("config.json hidden_act '{}' is not supported for LLaMA (silu is)", act);
  c.act = ActKind::silu;
  c.tied_head = hf_bool(j, "tie_word_embeddings", false);
  if (family == "mistral" && j.contains("sliding_window") && !j["sliding_window"].is_null())
    c.sliding_window = hf_int(j, "sliding_window");  // null: full attention (Mistral v0.2 on)
  // Qwen2 windows the layers from max_window_layers on, and only with use_sliding_window: one
  // window for every layer (or none) is a config switch, a window on some layers is refused.
  if (family == "qwen2" && hf_bool(j, "use_sliding_window", false) && j.contains("sliding_window") &&
      !j["sliding_window"].is_null()) {
    const int from = hf_int(j, "max_window_layers", 28), layers = hf_int(j, "num_hidden_layers");
    if (from == 0) c.sliding_window = hf_int(j, "sliding_window");
    else if (from < layers)
      bad_input("config.json: a sliding window on layers {} to {} only (max_window_layers {}) is not supported for "
                "Qwen2 (one window on every layer is)", from, layers - 1, from);
  }
  HfWeights w = read_hf_weights(dir, lazy);
  if (!c.tied_head && !w.find("lm_head.weight")) c.tied_head = true;
  validate_config(c, w.total_values());
  allocate(m, true, false, false);  // shapes; biases are optional rules: absent ones are dropped
  fill_from_rules(m, w, llama_hf_rules());
  m.tok = load_hf_tokenizer(dir, j);
  validate(m);
  return m;
}

Model load_hf_model(const std::string& dir, bool lazy) {
  std::string cfg_path = dir + "/config.json";
  nlohmann::json j = read_json_file(cfg_path);
  if (!j.is_object()) bad_input("{} is not a JSON object", cfg_path);
  std::string arch, type;
  try {
    if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
        j["architectures"][0].is_string())
      arch = j["architectures"][0].get<std::string>();
    type = hf_string(j, "model_type", "");
    if (arch == "MistralForCausalLM" || type == "mistral") return load_hf_llama(dir, j, lazy, "mistral");
    if (arch == "Qwen2ForCausalLM" || type == "qwen2") return load_hf_llama(dir, j, lazy, "qwen2");
    if (arch == "LlamaForCausalLM" || type == "llama") return load_hf_llama(dir, j, lazy, "llama");
    if (arch == "OPTForCausalLM" || (arch.empty() && type == "opt")) return load_hf_opt(dir, j, lazy);
    if (arch == "GPT2LMHeadModel" || (arch.empty() && type == "gpt2")) return load_hf_gpt2(dir, j);
    if (arch == "BertForSequenceClassification") return load_hf_bert(dir, j);
    if (arch == "ViTForImageClassification") return load_hf_vit(dir, j);
  } catch (const Error& e) {
    throw Error(e.exit_code, dir + ": " + e.what());
  }
  bad_input("{}: architecture '{}' (model_type '{}') is not supported", dir, arch, type);
}

}  // namespace tq
