#include "io/hf.h"

#include <sentencepiece_processor.h>

#include <map>

#include "core/error.h"
#include "core/mmap.h"
#include "io/load.h"

namespace tq {

HfWeights read_hf_weights(const std::string& dir) {
  HfWeights w;
  std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (file_exists(single)) {
    w.files.push_back(read_safetensors(single));
  } else if (file_exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(index));
    } catch (const nlohmann::json::exception& e) {
      bad_input("{}: {}", index, e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) bad_input("{}: no weight_map", index);
    std::map<std::string, int> shards;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) bad_input("{}: weight_map entry '{}' is not a file name", index, name);
      std::string f = file.get<std::string>();
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

static Tensor apply_transform(Tensor t, HfTransform tf, const std::string& name) {
  switch (tf) {
    case HfTransform::none: return t;
    case HfTransform::transpose: {
      TQ_CHECK_INPUT(t.ndim() == 2, "tensor {} should be a matrix to transpose", name);
      Tensor o({t.dim(1), t.dim(0)});
      for (int64_t i = 0; i < t.dim(0); i++)
        for (int64_t j = 0; j < t.dim(1); j++) o.data[j * t.dim(0) + i] = t.data[i * t.dim(1) + j];
      return o;
    }
    case HfTransform::split3_0:
    case HfTransform::split3_1:
    case HfTransform::split3_2: {
      int part = (int)tf - (int)HfTransform::split3_0;
      TQ_CHECK_INPUT(t.dim(0) % 3 == 0, "tensor {} of {} rows cannot be split in three", name, t.dim(0));
      int64_t rows = t.dim(0) / 3, per = t.numel() / t.dim(0);
      std::vector<int64_t> shape = t.shape;
      shape[0] = rows;
      Tensor o(shape);
      std::copy(t.data.begin() + part * rows * per, t.data.begin() + (part + 1) * rows * per, o.data.begin());
      return o;
    }
  }
  return t;
}

void fill_from_rules(Model& m, const HfWeights& w, const std::vector<HfNameRule>& rules) {
  std::map<std::string, const HfNameRule*> by_ours;
  for (auto& r : rules) by_ours[r.ours] = &r;
  auto rule_for = [&](const std::string& name, int& layer) -> const HfNameRule* {
    layer = -1;
    std::string key = name;
    if (name.rfind("blk.", 0) == 0) {
      size_t dot = name.find('.', 4);
      layer = std::stoi(name.substr(4, dot - 4));
      key = "blk.{L}" + name.substr(dot);
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
    Tensor v = apply_transform(w.owner(t).read_f32(*t), r->tf, hf);
    if (v.shape != nt.t->shape) {
      if (v.numel() == nt.t->numel() && nt.t->ndim() == 1) {
        v.shape = nt.t->shape;  // e.g. [1, 1, D] class token stored as [D]
      } else {
        bad_input("tensor {} has shape {}, expected {}", hf, shape_str(v.shape), shape_str(nt.t->shape));
      }
    }
    *nt.t = std::move(v);
  }
}

// tokenizer.json of the LLaMA kind: a BPE model over SentencePiece pieces
// with byte fallback; a merge's rank stands in for the piece score.
static Tokenizer spm_from_tokenizer_json(const nlohmann::json& j) {
  Tokenizer tok;
  tok.kind = TokKind::spm;
  const auto& model = j["model"];
  if (!model.contains("vocab") || !model["vocab"].is_object()) bad_input("tokenizer.json has no model.vocab");
  size_t n = model["vocab"].size();
  tok.pieces.assign(n, "");
  tok.scores.assign(n, 0.0f);
  tok.types.assign(n, tok_normal);
  auto unescape = [](std::string p) {
    std::string q;
    for (size_t i = 0; i < p.size(); i++) {
      if (p.compare(i, 3, "\xe2\x96\x81") == 0) {
        q += ' ';
        i += 2;
      } else {
        q += p[i];
      }
    }
    return q;
  };
  for (auto& [piece, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<uint64_t>() >= n)
      bad_input("tokenizer.json: id of '{}' is out of range", piece);
    tok.pieces[id.get<int>()] = unescape(piece);
  }
  if (model.contains("merges") && model["merges"].is_array()) {
    int rank = 0;
    for (auto& mg : model["merges"]) {
      std::string a, b;
      if (mg.is_string()) {
        std::string s = mg.get<std::string>();
        auto sp = s.find(' ');
        if (sp == std::string::npos) bad_input("tokenizer.json: merge '{}' has no space", s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else {
        bad_input("tokenizer.json: a merge is neither 'a b' nor [a, b]");
      }
      auto it = model["vocab"].find(a + b);
      if (it != model["vocab"].end()) {
        float& s = tok.scores[it->get<int>()];
        if (s == 0.0f) s = -(float)(++rank);
      }
    }
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (auto& t : j["added_tokens"]) {
      if (!t.contains("id") || !t["id"].is_number_integer()) continue;
      int64_t id = t["id"].get<int64_t>();
      if (id >= 0 && (size_t)id < n && t.value("special", false)) tok.types[id] = tok_control;
    }
  tok.unk = tok.find("<unk>");
  return tok;
}

Tokenizer load_hf_tokenizer(const std::string& dir, const nlohmann::json& config) {
  Tokenizer tok;
  std::string spm_path = dir + "/tokenizer.model", json_path = dir + "/tokenizer.json";
  if (file_exists(spm_path)) {
    sentencepiece::SentencePieceProcessor sp;
    if (!sp.Load(spm_path).ok()) bad_input("{} is not a SentencePiece model", spm_path);
    tok.kind = TokKind::spm;
    for (int i = 0; i < sp.GetPieceSize(); i++) {
      std::string p = sp.IdToPiece(i), q;
      for (size_t k = 0; k < p.size(); k++) {
        if (p.compare(k, 3, "\xe2\x96\x81") == 0) {
          q += ' ';
          k += 2;
        } else {
          q += p[k];
        }
      }
      tok.pieces.push_back(q);
      tok.scores.push_back(sp.GetScore(i));
      tok.types.push_back(sp.IsControl(i) ? tok_control : sp.IsUnknown(i) ? tok_unknown : sp.IsByte(i) ? tok_byte : tok_normal);
    }
    tok.unk = sp.unk_id();
    tok.bos = sp.bos_id();
    tok.eos = sp.eos_id();
  } else if (file_exists(json_path)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(json_path));
    } catch (const nlohmann::json::exception& e) {
      bad_input("{}: {}", json_path, e.what());
    }
    if (!j.contains("model") || !j["model"].is_object()) bad_input("{}: no model section", json_path);
    std::string type = j["model"].value("type", "");
    if (type != "BPE" || !j["model"].value("byte_fallback", false))
      bad_input("{}: only SentencePiece-style BPE with byte fallback is supported for LLaMA", json_path);
    tok = spm_from_tokenizer_json(j);
  } else {
    return tok;  // no tokenizer: the model still runs on token ids
  }
  auto id = [&](const char* key, int fallback) {
    return config.contains(key) && config[key].is_number_integer() ? config[key].get<int>() : fallback;
  };
  tok.bos = id("bos_token_id", tok.bos);
  tok.eos = id("eos_token_id", tok.eos);
  tok.finalize();
  return tok;
}

static const std::vector<HfNameRule>& llama_rules() {
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

static int cfg_int(const nlohmann::json& j, const char* key, int fallback = INT32_MIN) {
  if (!j.contains(key) || j[key].is_null()) {
    if (fallback == INT32_MIN) bad_input("config.json has no '{}'", key);
    return fallback;
  }
  if (!j[key].is_number_integer()) bad_input("config.json '{}' is not an integer", key);
  int64_t v = j[key].get<int64_t>();
  if (v < 0 || v > (1 << 30)) bad_input("config.json '{}' = {} is out of range", key, v);
  return (int)v;
}

static float cfg_float(const nlohmann::json& j, const char* key, float fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) bad_input("config.json '{}' is not a number", key);
  return j[key].get<float>();
}

static Model load_hf_llama(const std::string& dir, const nlohmann::json& j) {
  Model m;
  Config& c = m.cfg;
  c.arch = "llama";
  c.dim = cfg_int(j, "hidden_size");
  c.n_layers = cfg_int(j, "num_hidden_layers");
  c.n_heads = cfg_int(j, "num_attention_heads");
  c.n_kv_heads = cfg_int(j, "num_key_value_heads", c.n_heads);
  c.hidden = cfg_int(j, "intermediate_size");
  c.vocab = cfg_int(j, "vocab_size");
  c.n_out = c.vocab;
  c.max_seq = cfg_int(j, "max_position_embeddings", 2048);
  TQ_CHECK_INPUT(c.n_heads > 0 && c.dim % c.n_heads == 0, "config.json: hidden_size {} and {} heads", c.dim, c.n_heads);
  c.head_dim = cfg_int(j, "head_dim", c.dim / c.n_heads);
  c.norm = NormKind::rms;
  c.norm_eps = cfg_float(j, "rms_norm_eps", 1e-6f);
  c.rope_theta = cfg_float(j, "rope_theta", 10000.0f);
  c.rope_layout = RopeLayout::halves;
  c.pos = PosKind::rope;
  std::string act = j.value("hidden_act", "silu");
  if (act != "silu") bad_input("config.json hidden_act '{}' is not supported for LLaMA (silu is)", act);
  c.act = ActKind::silu;
  c.tied_head = j.value("tie_word_embeddings", false);
  HfWeights w = read_hf_weights(dir);
  if (!c.tied_head && !w.find("lm_head.weight")) c.tied_head = true;
  validate_config(c, w.total_values());
  allocate(m, true, false);  // biases are optional rules: absent ones are dropped
  fill_from_rules(m, w, llama_rules());
  m.tok = load_hf_tokenizer(dir, j);
  validate(m);
  return m;
}

Model load_hf_model(const std::string& dir) {
  std::string cfg_path = dir + "/config.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {
    bad_input("{}: {}", cfg_path, e.what());
  }
  if (!j.is_object()) bad_input("{} is not a JSON object", cfg_path);
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  std::string type = j.value("model_type", "");
  try {
    if (arch == "LlamaForCausalLM" || arch == "MistralForCausalLM" || type == "llama" || type == "mistral")
      return load_hf_llama(dir, j);
  } catch (const Error& e) {
    throw Error(e.exit_code, dir + ": " + e.what());
  }
  bad_input("{}: architecture '{}' (model_type '{}') is not supported", dir, arch, type);
}

}  // namespace tq
