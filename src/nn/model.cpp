#include "nn/model.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "nn/block.h"

namespace tq {

const char* to_string(NormKind k) { return k == NormKind::rms ? "rmsnorm" : "layernorm"; }
const char* to_string(ActKind k) {
  switch (k) {
    case ActKind::silu: return "silu";
    case ActKind::gelu: return "gelu";
    case ActKind::gelu_tanh: return "gelu_tanh";
    case ActKind::relu: return "relu";
  }
  return "?";
}
const char* to_string(PosKind k) {
  switch (k) {
    case PosKind::none: return "none";
    case PosKind::learned: return "learned";
    case PosKind::rope: return "rope";
  }
  return "?";
}

std::vector<NamedTensor> named_tensors(Model& m) {
  std::vector<NamedTensor> out;
  auto add = [&](const std::string& name, Tensor& t) {
    if (!t.empty()) out.push_back({name, &t});
  };
  auto add_lin = [&](const std::string& name, Linear& l) {
    add(name + ".weight", l.w);
    add(name + ".bias", l.b);
  };
  auto add_norm = [&](const std::string& name, Norm& n) {
    add(name + ".weight", n.g);
    add(name + ".bias", n.b);
  };
  add("token_embd.weight", m.tok_embd);
  add("position_embd.weight", m.pos_embd);
  add("token_types.weight", m.type_embd);
  add_lin("patch_embd", m.patch_embd);
  add("cls_token", m.cls);
  add_norm("token_embd_norm", m.embd_norm);
  const auto& norms = norm_table();  // attn_norm, the linears, ffn_norm: the order of GGUF files
  for (size_t i = 0; i < m.blocks.size(); i++) {
    Block& b = m.blocks[i];
    add_norm(block_key((int)i, norms[0].name), b.*norms[0].member);
    for (auto& nl : block_linears(b)) add_lin(block_key((int)i, nl.name), *nl.lin);
    add_norm(block_key((int)i, norms[1].name), b.*norms[1].member);
  }
  add_norm("output_norm", m.final_norm);
  add_lin("pooler", m.pooler_fc);
  add_lin("output", m.head);
  return out;
}

int64_t parameter_count(const Model& m) {
  int64_t n = 0;
  for (auto& nt : named_tensors(const_cast<Model&>(m))) n += nt.t->numel();
  return n;
}

void allocate(Model& m, bool linear_bias, bool norm_bias, bool values) {
  const Config& c = m.cfg;
  auto make = [values](std::vector<int64_t> shape, float fill = 0.0f) {
    if (values) return Tensor(std::move(shape), fill);
    Tensor t;
    t.shape = std::move(shape);
    return t;
  };
  auto lin = [&](int out, int in, bool bias) {
    Linear l;
    l.w = make({out, in});
    if (bias) l.b = make({out});
    return l;
  };
  auto norm = [&]() {
    Norm n;
    n.g = make({c.dim}, 1.0f);
    if (norm_bias || c.norm == NormKind::layer) n.b = make({c.dim});
    return n;
  };
  if (c.embed == EmbedKind::tokens) m.tok_embd = make({c.vocab, c.dim});
  if (c.embed == EmbedKind::patches) m.patch_embd = lin(c.dim, c.patch_dim, true);
  if (c.cls_token) m.cls = make({c.dim});
  if (c.pos == PosKind::learned) m.pos_embd = make({c.max_seq + c.pos_offset + (c.cls_token ? 1 : 0), c.dim});
  if (c.n_types > 0) m.type_embd = make({c.n_types, c.dim});
  m.blocks.assign(c.n_layers, Block{});
  for (Block& b : m.blocks) {
    for (auto& d : norm_table()) b.*d.member = norm();
    for (auto& d : linear_table())
      if (has_linear(c, d.slot)) b.*d.member = lin(width(c, d.out), width(c, d.in), linear_bias);
  }
  m.final_norm = norm();
  if (c.pooler) m.pooler_fc = lin(c.dim, c.dim, true);
  if (!c.tied_head) m.head = lin(c.n_out, c.dim, !c.is_lm() || linear_bias);
}

// Every value a config asks for, in 64 bits (validate_config bounds each size first, so no product overflows).
int64_t expected_parameters(const Config& c) {
  const int64_t d = c.dim;
  int64_t per_layer = 0;
  for (auto& l : linear_table())
    if (has_linear(c, l.slot)) per_layer += (int64_t)width(c, l.out) * width(c, l.in);
  const int64_t positions = c.pos == PosKind::learned ? (int64_t)c.max_seq + c.pos_offset + (c.cls_token ? 1 : 0) : 0;
  return per_layer * c.n_layers + (c.embed == EmbedKind::tokens ? (int64_t)c.vocab * d : 0) +
         (c.tied_head ? 0 : (int64_t)c.n_out * d) + positions * d + (int64_t)c.n_types * d +
         (c.embed == EmbedKind::patches ? (int64_t)c.patch_dim * d : 0) + (c.pooler ? d * d : 0);
}

void validate_config(const Config& c, int64_t max_params) {
  TQ_CHECK_INPUT(c.dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.head_dim > 0 && c.hidden > 0,
                 "model config is incomplete (dim {}, layers {}, heads {}, head_dim {}, hidden {})", c.dim,
                 c.n_layers, c.n_heads, c.head_dim, c.hidden);
  TQ_CHECK_INPUT(c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0,
                 "{} attention heads cannot share {} key/value heads", c.n_heads, c.n_kv_heads);
  TQ_CHECK_INPUT(c.n_out > 0, "model has no output size");
  TQ_CHECK_INPUT(c.pos != PosKind::rope || c.head_dim % 2 == 0, "RoPE needs an even head dimension, got {}",
                 c.head_dim);
  // Sizes are bounded one by one, and products in 64 bits, so that none wraps (n_heads × head_dim must not).
  TQ_CHECK_INPUT(c.dim <= (1 << 20) && c.hidden <= (1 << 22) && c.n_layers <= 4096 && c.vocab >= 0 &&
                     c.vocab <= (1 << 24) && c.n_heads <= 4096 && c.head_dim <= (1 << 16) &&
                     (int64_t)c.n_heads * c.head_dim <= (1 << 20) && c.max_seq <= (1 << 24) && c.n_out <= (1 << 24),
                 "model dimensions are implausibly large (dim {}, hidden {}, layers {}, vocab {}, {} heads of {})",
                 c.dim, c.hidden, c.n_layers, c.vocab, c.n_heads, c.head_dim);
  TQ_CHECK_INPUT(c.max_seq > 0, "model config has context length {}, expected at least 1", c.max_seq);
  TQ_CHECK_INPUT(c.sliding_window >= 0 && c.sliding_window <= (1 << 24), "sliding window {} is out of range [0, 2^24]",
                 c.sliding_window);
  TQ_CHECK_INPUT(c.pos_offset >= 0 && c.pos_offset <= (1 << 16), "position offset {} is out of range [0, 65536]",
                 c.pos_offset);
  TQ_CHECK_INPUT(c.n_types >= 0 && c.n_types <= (1 << 16), "{} token types is out of range [0, 65536]", c.n_types);
  TQ_CHECK_INPUT(std::isfinite(c.norm_eps) && c.norm_eps > 0 && c.norm_eps < 1,
                 "norm epsilon {} must be a finite number in (0, 1)", c.norm_eps);
  TQ_CHECK_INPUT(c.pos != PosKind::rope || (std::isfinite(c.rope_theta) && c.rope_theta > 0),
                 "RoPE base frequency {} must be a positive finite number", c.rope_theta);
  TQ_CHECK_INPUT(c.embed == EmbedKind::patches || c.vocab > 0, "model has no vocabulary");
  if (c.embed == EmbedKind::patches) {
    TQ_CHECK_INPUT(c.patch_dim > 0 && c.patch_dim <= (1 << 24), "{} values per patch is out of range", c.patch_dim);
    if (c.image_size || c.patch_size || c.channels) {  // the geometry that cuts images into patches
      TQ_CHECK_INPUT(c.channels >= 1 && c.channels <= 4 && c.patch_size > 0 && c.patch_size <= 1024 &&
                         c.image_size >= c.patch_size && c.image_size <= 16384 && c.image_size % c.patch_size == 0,
                     "image size {}, patch size {} and {} channels do not tile (patches up to 1024, images up to "
                     "16384, 1 to 4 channels)", c.image_size, c.patch_size, c.channels);
      TQ_CHECK_INPUT((int64_t)c.patch_dim == (int64_t)c.channels * c.patch_size * c.patch_size,
                     "patch size {} with {} channels gives {} values per patch, the config says {}", c.patch_size,
                     c.channels, (int64_t)c.channels * c.patch_size * c.patch_size, c.patch_dim);
    }
  }
  TQ_CHECK_INPUT(c.pixel_mean.size() == c.pixel_std.size() && c.pixel_mean.size() <= 4,
                 "pixel normalisation has {} means and {} deviations", c.pixel_mean.size(), c.pixel_std.size());
  for (size_t i = 0; i < c.pixel_mean.size(); i++)
    TQ_CHECK_INPUT(std::isfinite(c.pixel_mean[i]) && std::isfinite(c.pixel_std[i]) && c.pixel_std[i] > 0,
                   "pixel normalisation of channel {} (mean {}, std {}) must be finite with a positive std", i,
                   c.pixel_mean[i], c.pixel_std[i]);
  TQ_CHECK_INPUT(expected_parameters(c) <= max_params,
                 "model config asks for {} parameters but the file holds only {} values", expected_parameters(c),
                 max_params);
}

void validate(const Model& m) {
  const Config& c = m.cfg;
  validate_config(c, INT64_MAX);
  auto expect = [](const Tensor& t, std::vector<int64_t> s, const std::string& name) {
    if (t.shape != s) bad_input("tensor {} has shape {}, expected {}", name, shape_str(t.shape), shape_str(s));
  };
  auto expect_lin = [&](const Linear& l, int out, int in, const std::string& name) {
    expect(l.w, {out, in}, name + ".weight");
    if (!l.b.empty()) expect(l.b, {out}, name + ".bias");
  };
  auto expect_norm = [&](const Norm& n, const std::string& name) {
    expect(n.g, {c.dim}, name + ".weight");
    if (!n.b.empty()) expect(n.b, {c.dim}, name + ".bias");
  };
  if (c.embed == EmbedKind::tokens) expect(m.tok_embd, {c.vocab, c.dim}, "token_embd");
  TQ_CHECK_INPUT(m.tok.empty() || c.embed != EmbedKind::tokens || m.tok.size() <= c.vocab,
                 "the tokenizer has {} pieces, more than the {} rows of the token embedding", m.tok.size(), c.vocab);
  if (c.embed == EmbedKind::patches) expect_lin(m.patch_embd, c.dim, c.patch_dim, "patch_embd");
  if (c.cls_token) expect(m.cls, {c.dim}, "cls_token");
  if (c.pos == PosKind::learned) {
    TQ_CHECK_INPUT(m.pos_embd.ndim() == 2 && m.pos_embd.dim(1) == c.dim, "position embedding has shape {}",
                   shape_str(m.pos_embd.shape));
  }
  TQ_CHECK_INPUT((int)m.blocks.size() == c.n_layers, "model has {} blocks but config says {}", m.blocks.size(),
                 c.n_layers);
  for (int i = 0; i < c.n_layers; i++) {
    const Block& b = m.blocks[i];
    for (auto& d : norm_table()) expect_norm(b.*d.member, block_key(i, d.name));
    for (auto& d : linear_table())
      if (has_linear(c, d.slot)) expect_lin(b.*d.member, width(c, d.out), width(c, d.in), block_key(i, d.name));
  }
  if (!m.final_norm.g.empty()) expect_norm(m.final_norm, "output_norm");
  if (c.pooler) expect_lin(m.pooler_fc, c.dim, c.dim, "pooler");
  if (c.tied_head) {
    TQ_CHECK_INPUT(c.n_out == c.vocab, "a tied head needs n_out == vocab");
  } else {
    expect_lin(m.head, c.n_out, c.dim, "output");
  }
}

void check_finite_weights(const Model& m, const std::string& source) {
  auto check = [&](const NamedTensor& nt, const float* v, int64_t n, int64_t first) {
    for (int64_t i = 0; i < n; i++)
      if (!std::isfinite(v[i]))
        bad_input("{}: tensor {} holds {} at index {}; a model must have finite weights to run", source, nt.name,
                  v[i], first + i);
  };
  for (auto& nt : named_tensors(const_cast<Model&>(m))) {
    if (nt.t->has_values() || !nt.t->stored) {
      check(nt, nt.t->ptr(), nt.t->numel(), 0);
      continue;
    }
    // Only stored: read in tiles of rows and give the pages back, so the check of a lazily
    // loaded model touches the file once and keeps a tile per thread resident.
    const Stored& st = *nt.t->stored;
    const int64_t tile = std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, st.cols));
    parallel_for_with(
        (st.rows + tile - 1) / tile, [&] { return std::vector<float>((size_t)(tile * st.cols)); },
        [&](std::vector<float>& buf, int64_t t) {
          const int64_t r0 = t * tile, n = std::min(tile, st.rows - r0);
          st.rows_to_f32(r0, n, buf.data());
          st.evict(r0, n);
          check(nt, buf.data(), n * st.cols, r0 * st.cols);
        });
  }
}

}  // namespace tq
