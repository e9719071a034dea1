// Checkpoints without config.json: plain PyTorch state dicts saved as
// safetensors, recognised by their tensor names. Each layout is data: the
// names that identify it, the switches of its forward (from the model's
// README), the sizes read from tensor shapes, and the name map.
#include <filesystem>

#include "core/error.h"
#include "core/mmap.h"
#include "io/hf.h"
#include "io/load.h"

namespace tq {

namespace {

// A config size read from a tensor's shape (axis −1: the last).
struct ShapeSize {
  int Config::*field;
  const char* tensor;
  int axis;
};

struct TorchLayout {
  const char* name;
  std::vector<std::string> signature;  // all present: this layout
  const char* layer_probe;             // with {L}: present for each layer
  Config base;                         // switches and the sizes no shape tells
  std::vector<ShapeSize> sizes;
  bool final_norm;
  std::vector<HfNameRule> rules;
  std::vector<HfPreLinear> folds;
};

Config mnist_vit(int heads, bool post_norm, bool cls, PoolKind pool) {
  Config c;
  c.arch = "vit";
  c.n_heads = c.n_kv_heads = heads;
  c.norm = NormKind::layer;
  c.norm_eps = 1e-5f;
  c.act = ActKind::gelu;
  c.gated = false;
  c.post_norm = post_norm;
  c.causal = false;
  c.pos = PosKind::learned;
  c.embed = EmbedKind::patches;
  c.image_size = 28, c.patch_size = 7, c.channels = 1, c.patch_dim = 49, c.max_seq = 16;
  c.pixel_mean = {0.1307f}, c.pixel_std = {0.3081f};  // torchvision's MNIST normalisation
  c.cls_token = cls;
  c.pool = pool;
  return c;
}

const std::vector<TorchLayout>& layouts() {
  using T = HfTransform;
  static const std::vector<TorchLayout> all = {
      // github.com/sonjuhy/VLMStudy ViTEncoder: pre-norm with one LayerNorm used by
      // both sub-blocks, an extra Linear before each of MultiheadAttention's q/k/v
      // projections, CLS pooling, no final norm.
      {"vit-mnist-sonjuhy",
       {"embedding.div_img.weight", "embedding.cls_token", "layers.0.multihead_attention.query.weight", "classifer.weight"},
       "layers.{L}.norm.weight",
       mnist_vit(7, false, true, PoolKind::first),
       {{&Config::dim, "embedding.cls_token", -1}, {&Config::hidden, "layers.0.FFL.0.weight", 0},
        {&Config::n_out, "classifer.weight", 0}},
       false,
       {{"patch_embd.weight", "embedding.div_img.weight", T::flatten},
        {"patch_embd.bias", "embedding.div_img.bias"},
        {"cls_token", "embedding.cls_token"},
        {"position_embd.weight", "embedding.position_div_imgs"},
        {"blk.{L}.attn_norm.weight", "layers.{L}.norm.weight"},
        {"blk.{L}.attn_norm.bias", "layers.{L}.norm.bias"},
        {"blk.{L}.ffn_norm.weight", "layers.{L}.norm.weight"},
        {"blk.{L}.ffn_norm.bias", "layers.{L}.norm.bias"},
        {"blk.{L}.attn_q.weight", "layers.{L}.multihead_attention.multihead_attention.in_proj_weight", T::none, false, 0},
        {"blk.{L}.attn_k.weight", "layers.{L}.multihead_attention.multihead_attention.in_proj_weight", T::none, false, 1},
        {"blk.{L}.attn_v.weight", "layers.{L}.multihead_attention.multihead_attention.in_proj_weight", T::none, false, 2},
        {"blk.{L}.attn_q.bias", "layers.{L}.multihead_attention.multihead_attention.in_proj_bias", T::none, false, 0},
        {"blk.{L}.attn_k.bias", "layers.{L}.multihead_attention.multihead_attention.in_proj_bias", T::none, false, 1},
        {"blk.{L}.attn_v.bias", "layers.{L}.multihead_attention.multihead_attention.in_proj_bias", T::none, false, 2},
        {"blk.{L}.attn_output.weight", "layers.{L}.multihead_attention.multihead_attention.out_proj.weight"},
        {"blk.{L}.attn_output.bias", "layers.{L}.multihead_attention.multihead_attention.out_proj.bias"},
        {"blk.{L}.ffn_up.weight", "layers.{L}.FFL.0.weight"},
        {"blk.{L}.ffn_up.bias", "layers.{L}.FFL.0.bias"},
        {"blk.{L}.ffn_down.weight", "layers.{L}.FFL.3.weight"},
        {"blk.{L}.ffn_down.bias", "layers.{L}.FFL.3.bias"},
        {"output.weight", "classifer.weight"},
        {"output.bias", "classifer.bias"}},
       {{"blk.{L}.attn_q", "layers.{L}.multihead_attention.query"},
        {"blk.{L}.attn_k", "layers.{L}.multihead_attention.key"},
        {"blk.{L}.attn_v", "layers.{L}.multihead_attention.value"}}},
      // github.com/agentzz1/transformer_poc MNISTViT: post-norm, no CLS token,
      // final LayerNorm, then the mean over tokens.
      {"vit-mnist-agentzz1",
       {"patch_embed.proj.weight", "pos_embed", "encoder.0.attn.in_proj_weight", "classifier.weight"},
       "encoder.{L}.norm1.weight",
       mnist_vit(1, true, false, PoolKind::mean),
       {{&Config::dim, "patch_embed.proj.weight", 0}, {&Config::hidden, "encoder.0.ffn.fc1.weight", 0},
        {&Config::n_out, "classifier.weight", 0}},
       true,
       {{"patch_embd.weight", "patch_embed.proj.weight"},
        {"patch_embd.bias", "patch_embed.proj.bias"},
        {"position_embd.weight", "pos_embed"},
        {"blk.{L}.attn_norm.weight", "encoder.{L}.norm1.weight"},
        {"blk.{L}.attn_norm.bias", "encoder.{L}.norm1.bias"},
        {"blk.{L}.ffn_norm.weight", "encoder.{L}.norm2.weight"},
        {"blk.{L}.ffn_norm.bias", "encoder.{L}.norm2.bias"},
        {"blk.{L}.attn_q.weight", "encoder.{L}.attn.in_proj_weight", T::none, false, 0},
        {"blk.{L}.attn_k.weight", "encoder.{L}.attn.in_proj_weight", T::none, false, 1},
        {"blk.{L}.attn_v.weight", "encoder.{L}.attn.in_proj_weight", T::none, false, 2},
        {"blk.{L}.attn_q.bias", "encoder.{L}.attn.in_proj_bias", T::none, false, 0},
        {"blk.{L}.attn_k.bias", "encoder.{L}.attn.in_proj_bias", T::none, false, 1},
        {"blk.{L}.attn_v.bias", "encoder.{L}.attn.in_proj_bias", T::none, false, 2},
        {"blk.{L}.attn_output.weight", "encoder.{L}.attn.out_proj.weight"},
        {"blk.{L}.attn_output.bias", "encoder.{L}.attn.out_proj.bias"},
        {"blk.{L}.ffn_up.weight", "encoder.{L}.ffn.fc1.weight"},
        {"blk.{L}.ffn_up.bias", "encoder.{L}.ffn.fc1.bias"},
        {"blk.{L}.ffn_down.weight", "encoder.{L}.ffn.fc2.weight"},
        {"blk.{L}.ffn_down.bias", "encoder.{L}.ffn.fc2.bias"},
        {"output_norm.weight", "norm.weight"},
        {"output_norm.bias", "norm.bias"},
        {"output.weight", "classifier.weight"},
        {"output.bias", "classifier.bias"}},
       {}},
  };
  return all;
}

std::string with_layer(std::string s, int l) {
  s.replace(s.find("{L}"), 3, std::to_string(l));
  return s;
}

}  // namespace

Model load_torch_layout(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = path;
  if (is_directory(path)) {
    std::vector<std::string> found;
    std::error_code ec;
    for (auto& e : fs::directory_iterator(path, ec))
      if (e.path().extension() == ".safetensors") found.push_back(e.path().string());
    if (found.size() != 1)
      bad_input("{}: a model directory needs config.json, or exactly one .safetensors file of a known layout ({} found)",
                path, found.size());
    file = found[0];
  }
  HfWeights w;
  w.files.push_back(read_safetensors(file));
  for (auto& lay : layouts()) {
    bool all = true;
    for (auto& n : lay.signature) all = all && w.find(n);
    if (!all) continue;
    Model m;
    Config& c = m.cfg = lay.base;
    for (auto& s : lay.sizes) {
      const SafeTensor* t = w.find(s.tensor);
      if (!t) bad_input("{}: tensor {} is missing", file, s.tensor);
      int axis = s.axis < 0 ? (int)t->shape.size() + s.axis : s.axis;
      if (axis < 0 || axis >= (int)t->shape.size() || t->shape[axis] > (1 << 24))
        bad_input("{}: tensor {} has shape {}", file, s.tensor, shape_str(t->shape));
      c.*s.field = (int)t->shape[axis];
    }
    while (c.n_layers < 4096 && w.find(with_layer(lay.layer_probe, c.n_layers))) c.n_layers++;
    TQ_CHECK_INPUT(c.n_heads > 0 && c.dim % c.n_heads == 0, "{}: dim {} is not a multiple of {} heads", file, c.dim,
                   c.n_heads);
    c.head_dim = c.dim / c.n_heads;
    for (int i = 0; i < c.n_out; i++) m.labels.push_back(std::to_string(i));
    try {
      validate_config(c, w.total_values());
      allocate(m, true, true, false);  // shapes: the rules fill every tensor
      if (!lay.final_norm) m.final_norm = Norm{};
      fill_from_rules(m, w, lay.rules);
      fold_pre_linears(m, w, lay.folds);
      validate(m);
    } catch (const Error& e) {
      throw Error(e.exit_code, file + " (" + lay.name + " layout): " + e.what());
    }
    return m;
  }
  bad_input("{}: no config.json and the tensor names match no known layout", file);
}

}  // namespace tq
