// Hugging Face families on the one block: OPT, GPT-2, BERT and ViT. Each is a
// config reader (the switches it sets) and a table from HF tensor names to ours.
#include <map>

#include "core/checked.h"
#include "core/error.h"
#include "core/mmap.h"
#include "io/hf.h"
#include "io/load.h"

namespace tq {

using json = nlohmann::json;

static ActKind hf_act(const json& j, const char* key, const char* fallback) {
  std::string a = hf_string(j, key, fallback);
  if (a == "gelu") return ActKind::gelu;
  if (a == "gelu_new" || a == "gelu_fast" || a == "gelu_pytorch_tanh") return ActKind::gelu_tanh;
  if (a == "relu") return ActKind::relu;
  bad_input("config.json {} '{}' is not supported (gelu, gelu_new, relu are)", key, a);
}

// Class names from id2label ({"0": "NEGATIVE", ...}), or none: finish() then names
// num_labels classes LABEL_i, once the weights have bounded how many there can be.
static std::vector<std::string> hf_labels(const json& j) {
  std::vector<std::string> labels;
  if (j.contains("id2label") && j["id2label"].is_object() && !j["id2label"].empty()) {
    std::map<int64_t, std::string> by_id;
    for (auto& [k, v] : JsonAt(j, "config.json")["id2label"].items())
      by_id[parse_int(k, 0, 1 << 24, "config.json id2label key")] = v.string();
    if ((size_t)by_id.rbegin()->first != by_id.size() - 1) bad_input("config.json id2label ids are not 0..n-1");
    for (auto& [id, name] : by_id) labels.push_back(name);
  }
  return labels;
}

// The number of classes: those id2label names, or num_labels (default 2).
static int hf_classes(const json& j, const std::vector<std::string>& labels) {
  return labels.empty() ? hf_int(j, "num_labels", 2) : (int)labels.size();
}

static void need_flag(const json& j, const char* key, bool expected, const char* why) {
  if (hf_bool(j, key, expected) != expected) bad_input("config.json {} = {} is not supported: {}", key, !expected, why);
}

// Allocates, fills and checks. Linear biases are allocated everywhere; rules
// mark the ones a checkpoint may lack as optional.
static Model finish(Model m, const std::string& dir, const json& j, HfWeights& w, const std::vector<HfNameRule>& rules,
                    bool final_norm, bool embd_norm) {
  validate_config(m.cfg, w.total_values());
  if (m.labels.empty() && !m.cfg.is_lm())
    for (int i = 0; i < m.cfg.n_out; i++) m.labels.push_back("LABEL_" + std::to_string(i));
  allocate(m, true, true, false);  // shapes: the rules fill every tensor
  if (!final_norm) m.final_norm = Norm{};
  if (embd_norm) m.embd_norm = Norm{Tensor({m.cfg.dim}, 1.0f), Tensor({m.cfg.dim})};
  fill_from_rules(m, w, rules);
  m.tok = load_hf_tokenizer(dir, j);
  validate(m);
  return m;
}

static Config text_config(const json& j, const char* dim, const char* layers, const char* heads,
                             const char* positions) {
  Config c;
  c.dim = hf_int(j, dim);
  c.n_layers = hf_int(j, layers);
  c.n_heads = c.n_kv_heads = hf_int(j, heads);
  TQ_CHECK_INPUT(c.n_heads > 0 && c.dim % c.n_heads == 0, "config.json: {} {} is not a multiple of {} heads", dim,
                 c.dim, c.n_heads);
  c.head_dim = c.dim / c.n_heads;
  c.vocab = c.n_out = hf_int(j, "vocab_size");
  c.max_seq = hf_int(j, positions);
  c.norm = NormKind::layer;
  c.gated = false;
  c.pos = PosKind::learned;
  return c;
}

// OPT (modeling_opt.py): pre-norm decoder, ReLU, learned positions offset by 2,
// final LayerNorm, head tied to the token embedding.
static const std::vector<HfNameRule>& opt_rules() {
  static const std::vector<HfNameRule> r = {
      {"token_embd.weight", "model.decoder.embed_tokens.weight"},
      {"position_embd.weight", "model.decoder.embed_positions.weight"},
      {"blk.{L}.attn_norm.weight", "model.decoder.layers.{L}.self_attn_layer_norm.weight"},
      {"blk.{L}.attn_norm.bias", "model.decoder.layers.{L}.self_attn_layer_norm.bias"},
      {"blk.{L}.attn_q.weight", "model.decoder.layers.{L}.self_attn.q_proj.weight"},
      {"blk.{L}.attn_q.bias", "model.decoder.layers.{L}.self_attn.q_proj.bias", HfTransform::none, true},
      {"blk.{L}.attn_k.weight", "model.decoder.layers.{L}.self_attn.k_proj.weight"},
      {"blk.{L}.attn_k.bias", "model.decoder.layers.{L}.self_attn.k_proj.bias", HfTransform::none, true},
      {"blk.{L}.attn_v.weight", "model.decoder.layers.{L}.self_attn.v_proj.weight"},
      {"blk.{L}.attn_v.bias", "model.decoder.layers.{L}.self_attn.v_proj.bias", HfTransform::none, true},
      {"blk.{L}.attn_output.weight", "model.decoder.layers.{L}.self_attn.out_proj.weight"},
      {"blk.{L}.attn_output.bias", "model.decoder.layers.{L}.self_attn.out_proj.bias", HfTransform::none, true},
      {"blk.{L}.ffn_norm.weight", "model.decoder.layers.{L}.final_layer_norm.weight"},
      {"blk.{L}.ffn_norm.bias", "model.decoder.layers.{L}.final_layer_norm.bias"},
      {"blk.{L}.ffn_up.weight", "model.decoder.layers.{L}.fc1.weight"},
      {"blk.{L}.ffn_up.bias", "model.decoder.layers.{L}.fc1.bias", HfTransform::none, true},
      {"blk.{L}.ffn_down.weight", "model.decoder.layers.{L}.fc2.weight"},
      {"blk.{L}.ffn_down.bias", "model.decoder.layers.{L}.fc2.bias", HfTransform::none, true},
      {"output_norm.weight", "model.decoder.final_layer_norm.weight"},
      {"output_norm.bias", "model.decoder.final_layer_norm.bias"},
      {"output.weight", "lm_head.weight"},
      {"output.bias", "lm_head.bias", HfTransform::none, true},
  };
  return r;
}

Model load_hf_opt(const std::string& dir, const json& j, bool lazy) {
  Model m;
  Config& c = m.cfg = text_config(j, "hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "max_position_embeddings");
  c.arch = "opt";
  c.hidden = hf_int(j, "ffn_dim");
  c.norm_eps = 1e-5f;  // nn.LayerNorm's default; OPT's config has no eps
  c.act = hf_act(j, "activation_function", "relu");
  c.pos_offset = 2;  // OPTLearnedPositionalEmbedding: position p reads row p + 2
  int proj = hf_int(j, "word_embed_proj_dim", c.dim);
  if (proj != c.dim)
    bad_input("OPT with word_embed_proj_dim {} != hidden_size {} (project_in/project_out, as OPT-350m) is not supported",
              proj, c.dim);
  need_flag(j, "do_layer_norm_before", true, "post-norm OPT (only OPT-350m, which also projects) is not supported");
  need_flag(j, "layer_norm_elementwise_affine", true, "LayerNorms without gain and bias");
  HfWeights w = read_hf_weights(dir, lazy);
  w.base_prefix = "model.";
  c.tied_head = hf_bool(j, "tie_word_embeddings", true) || !w.find("lm_head.weight");
  bool final_norm = !hf_bool(j, "_remove_final_layer_norm", false);
  return finish(std::move(m), dir, j, w, opt_rules(), final_norm, false);
}

// GPT-2 (modeling_gpt2.py): pre-norm decoder, gelu_new, Conv1D weights stored
// [in, out], fused q|k|v in c_attn, learned positions from 0, tied head.
static const std::vector<HfNameRule>& gpt2_rules() {
  using T = HfTransform;
  static const std::vector<HfNameRule> r = {
      {"token_embd.weight", "transformer.wte.weight"},
      {"position_embd.weight", "transformer.wpe.weight"},
      {"blk.{L}.attn_norm.weight", "transformer.h.{L}.ln_1.weight"},
      {"blk.{L}.attn_norm.bias", "transformer.h.{L}.ln_1.bias"},
      {"blk.{L}.attn_q.weight", "transformer.h.{L}.attn.c_attn.weight", T::transpose, false, 0},
      {"blk.{L}.attn_k.weight", "transformer.h.{L}.attn.c_attn.weight", T::transpose, false, 1},
      {"blk.{L}.attn_v.weight", "transformer.h.{L}.attn.c_attn.weight", T::transpose, false, 2},
      {"blk.{L}.attn_q.bias", "transformer.h.{L}.attn.c_attn.bias", T::none, false, 0},
      {"blk.{L}.attn_k.bias", "transformer.h.{L}.attn.c_attn.bias", T::none, false, 1},
      {"blk.{L}.attn_v.bias", "transformer.h.{L}.attn.c_attn.bias", T::none, false, 2},
      {"blk.{L}.attn_output.weight", "transformer.h.{L}.attn.c_proj.weight", T::transpose},
      {"blk.{L}.attn_output.bias", "transformer.h.{L}.attn.c_proj.bias"},
      {"blk.{L}.ffn_norm.weight", "transformer.h.{L}.ln_2.weight"},
      {"blk.{L}.ffn_norm.bias", "transformer.h.{L}.ln_2.bias"},
      {"blk.{L}.ffn_up.weight", "transformer.h.{L}.mlp.c_fc.weight", T::transpose},
      {"blk.{L}.ffn_up.bias", "transformer.h.{L}.mlp.c_fc.bias"},
      {"blk.{L}.ffn_down.weight", "transformer.h.{L}.mlp.c_proj.weight", T::transpose},
      {"blk.{L}.ffn_down.bias", "transformer.h.{L}.mlp.c_proj.bias"},
      {"output_norm.weight", "transformer.ln_f.weight"},
      {"output_norm.bias", "transformer.ln_f.bias"},
      {"output.weight", "lm_head.weight"},
      {"output.bias", "lm_head.bias", T::none, true},
  };
  return r;
}

Model load_hf_gpt2(const std::string& dir, const json& j) {
  Model m;
  Config& c = m.cfg = text_config(j, "n_embd", "n_layer", "n_head", "n_positions");
  c.arch = "gpt2";
  c.hidden = hf_int(j, "n_inner", 4 * c.dim);
  c.norm_eps = hf_float(j, "layer_norm_epsilon", 1e-5f);
  c.act = hf_act(j, "activation_function", "gelu_new");
  need_flag(j, "scale_attn_weights", true, "attention without the 1/sqrt(head_dim) scale");
  need_flag(j, "scale_attn_by_inverse_layer_idx", false, "attention scaled by the layer index");
  HfWeights w = read_hf_weights(dir);
  w.base_prefix = "transformer.";
  c.tied_head = hf_bool(j, "tie_word_embeddings", true) || !w.find("lm_head.weight");
  return finish(std::move(m), dir, j, w, gpt2_rules(), true, false);
}

// BERT (modeling_bert.py): post-norm encoder; word + position + token-type
// embeddings, then LayerNorm; erf GELU; pooler tanh(dense(x_CLS)); classifier.
static const std::vector<HfNameRule>& bert_rules() {
  static const std::vector<HfNameRule> r = {
      {"token_embd.weight", "bert.embeddings.word_embeddings.weight"},
      {"position_embd.weight", "bert.embeddings.position_embeddings.weight"},
      {"token_types.weight", "bert.embeddings.token_type_embeddings.weight"},
      {"token_embd_norm.weight", "bert.embeddings.LayerNorm.weight"},
      {"token_embd_norm.bias", "bert.embeddings.LayerNorm.bias"},
      {"blk.{L}.attn_q.weight", "bert.encoder.layer.{L}.attention.self.query.weight"},
      {"blk.{L}.attn_q.bias", "bert.encoder.layer.{L}.attention.self.query.bias"},
      {"blk.{L}.attn_k.weight", "bert.encoder.layer.{L}.attention.self.key.weight"},
      {"blk.{L}.attn_k.bias", "bert.encoder.layer.{L}.attention.self.key.bias"},
      {"blk.{L}.attn_v.weight", "bert.encoder.layer.{L}.attention.self.value.weight"},
      {"blk.{L}.attn_v.bias", "bert.encoder.layer.{L}.attention.self.value.bias"},
      {"blk.{L}.attn_output.weight", "bert.encoder.layer.{L}.attention.output.dense.weight"},
      {"blk.{L}.attn_output.bias", "bert.encoder.layer.{L}.attention.output.dense.bias"},
      {"blk.{L}.attn_norm.weight", "bert.encoder.layer.{L}.attention.output.LayerNorm.weight"},
      {"blk.{L}.attn_norm.bias", "bert.encoder.layer.{L}.attention.output.LayerNorm.bias"},
      {"blk.{L}.ffn_up.weight", "bert.encoder.layer.{L}.intermediate.dense.weight"},
      {"blk.{L}.ffn_up.bias", "bert.encoder.layer.{L}.intermediate.dense.bias"},
      {"blk.{L}.ffn_down.weight", "bert.encoder.layer.{L}.output.dense.weight"},
      {"blk.{L}.ffn_down.bias", "bert.encoder.layer.{L}.output.dense.bias"},
      {"blk.{L}.ffn_norm.weight", "bert.encoder.layer.{L}.output.LayerNorm.weight"},
      {"blk.{L}.ffn_norm.bias", "bert.encoder.layer.{L}.output.LayerNorm.bias"},
      {"pooler.weight", "bert.pooler.dense.weight"},
      {"pooler.bias", "bert.pooler.dense.bias"},
      {"output.weight", "classifier.weight"},
      {"output.bias", "classifier.bias"},
  };
  return r;
}

Model load_hf_bert(const std::string& dir, const json& j) {
  Model m;
  Config& c = m.cfg = text_config(j, "hidden_size", "num_hidden_layers", "num_attention_heads",
                                     "max_position_embeddings");
  c.arch = "bert";
  c.hidden = hf_int(j, "intermediate_size");
  c.norm_eps = hf_float(j, "layer_norm_eps", 1e-12f);
  c.act = hf_act(j, "hidden_act", "gelu");
  c.post_norm = true;
  c.causal = false;
  c.n_types = hf_int(j, "type_vocab_size", 2);
  c.pool = PoolKind::first;
  c.pooler = true;
  m.labels = hf_labels(j);
  c.n_out = hf_classes(j, m.labels);
  std::string pe = hf_string(j, "position_embedding_type", "absolute");
  if (pe != "absolute") bad_input("config.json position_embedding_type '{}' is not supported (absolute is)", pe);
  need_flag(j, "is_decoder", false, "BERT as a decoder");
  HfWeights w = read_hf_weights(dir);
  w.base_prefix = "bert.";
  return finish(std::move(m), dir, j, w, bert_rules(), false, true);
}

// ViT (modeling_vit.py): the patch convolution as a linear over (C, H, W)
// patches, CLS token, learned positions, pre-norm encoder, final LayerNorm,
// classifier on the CLS token.
static const std::vector<HfNameRule>& vit_rules() {
  using T = HfTransform;
  static const std::vector<HfNameRule> r = {
      {"patch_embd.weight", "vit.embeddings.patch_embeddings.projection.weight", T::flatten},
      {"patch_embd.bias", "vit.embeddings.patch_embeddings.projection.bias"},
      {"cls_token", "vit.embeddings.cls_token"},
      {"position_embd.weight", "vit.embeddings.position_embeddings"},
      {"blk.{L}.attn_norm.weight", "vit.encoder.layer.{L}.layernorm_before.weight"},
      {"blk.{L}.attn_norm.bias", "vit.encoder.layer.{L}.layernorm_before.bias"},
      {"blk.{L}.attn_q.weight", "vit.encoder.layer.{L}.attention.attention.query.weight"},
      {"blk.{L}.attn_q.bias", "vit.encoder.layer.{L}.attention.attention.query.bias", T::none, true},
      {"blk.{L}.attn_k.weight", "vit.encoder.layer.{L}.attention.attention.key.weight"},
      {"blk.{L}.attn_k.bias", "vit.encoder.layer.{L}.attention.attention.key.bias", T::none, true},
      {"blk.{L}.attn_v.weight", "vit.encoder.layer.{L}.attention.attention.value.weight"},
      {"blk.{L}.attn_v.bias", "vit.encoder.layer.{L}.attention.attention.value.bias", T::none, true},
      {"blk.{L}.attn_output.weight", "vit.encoder.layer.{L}.attention.output.dense.weight"},
      {"blk.{L}.attn_output.bias", "vit.encoder.layer.{L}.attention.output.dense.bias"},
      {"blk.{L}.ffn_norm.weight", "vit.encoder.layer.{L}.layernorm_after.weight"},
      {"blk.{L}.ffn_norm.bias", "vit.encoder.layer.{L}.layernorm_after.bias"},
      {"blk.{L}.ffn_up.weight", "vit.encoder.layer.{L}.intermediate.dense.weight"},
      {"blk.{L}.ffn_up.bias", "vit.encoder.layer.{L}.intermediate.dense.bias"},
      {"blk.{L}.ffn_down.weight", "vit.encoder.layer.{L}.output.dense.weight"},
      {"blk.{L}.ffn_down.bias", "vit.encoder.layer.{L}.output.dense.bias"},
      {"output_norm.weight", "vit.layernorm.weight"},
      {"output_norm.bias", "vit.layernorm.bias"},
      {"output.weight", "classifier.weight"},
      {"output.bias", "classifier.bias"},
  };
  return r;
}

// Pixel normalisation from preprocessor_config.json (ViTImageProcessor's
// defaults, mean = std = 0.5, when absent).
static void read_pixel_norm(const std::string& dir, Config& c) {
  c.pixel_mean.assign(c.channels, 0.5f);
  c.pixel_std.assign(c.channels, 0.5f);
  std::string path = dir + "/preprocessor_config.json";
  if (!file_exists(path)) return;
  json p = read_json_file(path);
  JsonAt at(p, path);
  at.object();
  float rescale = (float)at.number("rescale_factor", 0, 1, 1.0 / 255);
  if (at.boolean("do_rescale", true) && std::abs(rescale * 255 - 1) > 1e-6f)
    bad_input("{}: rescale_factor {} is not supported (1/255 is)", path, rescale);
  if (!at.boolean("do_normalize", true)) {
    c.pixel_mean.assign(c.channels, 0.0f);
    c.pixel_std.assign(c.channels, 1.0f);
    return;
  }
  for (auto [key, out] : {std::pair{"image_mean", &c.pixel_mean}, std::pair{"image_std", &c.pixel_std}}) {
    if (!at.has(key)) continue;
    *out = at[key].floats(-1e6, 1e6);
    if ((int)out->size() != c.channels) at[key].fail("needs {} numbers, got {}", c.channels, out->size());
  }
  for (float s : c.pixel_std) TQ_CHECK_INPUT(s > 0, "{}: image_std must be positive", path);
}

Model load_hf_vit(const std::string& dir, const json& j) {
  Model m;
  Config& c = m.cfg;
  c.arch = "vit";
  c.dim = hf_int(j, "hidden_size");
  c.n_layers = hf_int(j, "num_hidden_layers");
  c.n_heads = c.n_kv_heads = hf_int(j, "num_attention_heads");
  TQ_CHECK_INPUT(c.n_heads > 0 && c.dim % c.n_heads == 0, "config.json: hidden_size {} is not a multiple of {} heads",
                 c.dim, c.n_heads);
  c.head_dim = c.dim / c.n_heads;
  c.hidden = hf_int(j, "intermediate_size");
  c.norm = NormKind::layer;
  c.norm_eps = hf_float(j, "layer_norm_eps", 1e-12f);
  c.act = hf_act(j, "hidden_act", "gelu");
  c.gated = false;
  c.causal = false;
  c.pos = PosKind::learned;
  c.embed = EmbedKind::patches;
  c.image_size = hf_int(j, "image_size", 224);
  c.patch_size = hf_int(j, "patch_size", 16);
  c.channels = hf_int(j, "num_channels", 3);
  // Bounded before the products below: a patch_size of 16384 would ask for 51 GB.
  TQ_CHECK_INPUT(c.patch_size > 0 && c.patch_size <= 1024 && c.image_size <= 16384 && c.image_size >= c.patch_size &&
                     c.image_size % c.patch_size == 0 && c.channels > 0 && c.channels <= 4,
                 "config.json: image_size {}, patch_size {}, {} channels do not tile (patches up to 1024, images up "
                 "to 16384, 1 to 4 channels)", c.image_size, c.patch_size, c.channels);
  c.patch_dim = c.channels * c.patch_size * c.patch_size;
  c.max_seq = (c.image_size / c.patch_size) * (c.image_size / c.patch_size);
  c.cls_token = true;
  c.pool = PoolKind::first;
  m.labels = hf_labels(j);
  c.n_out = hf_classes(j, m.labels);
  read_pixel_norm(dir, c);
  HfWeights w = read_hf_weights(dir);
  w.base_prefix = "vit.";
  return finish(std::move(m), dir, j, w, vit_rules(), true, false);
}

}  // namespace tq
