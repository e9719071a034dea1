// The in-memory model: a config and plain structs of named f32 tensors.
// Every family (LLaMA, OPT, GPT-2, BERT, ViT) is this one struct; families
// differ in the loader's name map and in which optional tensors are present.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "text/tokenizer.h"

namespace tq {

enum class NormKind { rms, layer };
enum class ActKind { silu, gelu, gelu_tanh, relu };
enum class PosKind { none, learned, rope };
enum class RopeLayout { pairs, halves };  // pairs: (2i, 2i+1) as GGUF/llama2.c; halves: (i, i+d/2) as HF
enum class EmbedKind { tokens, patches };
enum class PoolKind { none, first, mean };  // none: per-token head (LM); first: CLS token; mean: over tokens

struct Config {
  std::string arch = "llama";  // family name, for reports and export
  int dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, hidden = 0;
  int vocab = 0;       // token vocabulary (0 for image models)
  int n_out = 0;       // head outputs: vocab for LMs, classes for classifiers
  int max_seq = 0;     // longest sequence the positions cover
  NormKind norm = NormKind::rms;
  float norm_eps = 1e-5f;
  ActKind act = ActKind::silu;
  bool gated = true;        // FFN = down(act(gate x) * up x) instead of down(act(up x))
  bool post_norm = false;   // x = norm(x + f(x)) instead of x + f(norm(x))
  bool causal = true;
  int sliding_window = 0;   // a query sees itself and the sliding_window − 1 positions before it (Mistral); 0: all
  PosKind pos = PosKind::rope;
  RopeLayout rope_layout = RopeLayout::pairs;
  float rope_theta = 10000.0f;
  int pos_offset = 0;       // learned-position index of token 0 (OPT: 2)
  EmbedKind embed = EmbedKind::tokens;
  int patch_dim = 0;        // values per patch (image models)
  int image_size = 0, patch_size = 0, channels = 0;
  std::vector<float> pixel_mean, pixel_std;  // per channel: input = (pixel/255 − mean) / std
  bool cls_token = false;   // a learned token prepended to the patches
  PoolKind pool = PoolKind::none;
  bool pooler = false;      // BERT: tanh(dense(x_cls)) before the classifier
  bool tied_head = false;   // LM head shares the token embedding
  int n_types = 0;          // BERT token types

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  bool is_lm() const { return pool == PoolKind::none && embed == EmbedKind::tokens; }
};

// Another way to compute one linear, y[N, out] = f(x[N, in]), bias included:
// the integer runtime's packed weights (runtime/runtime.h). Held by the
// Linear it replaces, so the one forward serves float and integer models.
struct LinearExec {
  virtual ~LinearExec() = default;
  virtual void forward(float* y, const float* x, int N) const = 0;
  virtual int64_t bytes() const = 0;  // memory the executor holds
};

struct AttnShape;

// Another way to compute a block's attention: the integer runtime's kernels
// (runtime/runtime.h). For one sequence, att [Sq, H·hd] (row stride q_stride)
// from q [Sq, H·hd] and the keys and values of every position k, v [Sk, KV·hd]
// (row stride kv_stride), as the block hands them over; the executor quantizes
// the sites it owns (q, k, v, probs) itself.
struct AttentionExec {
  virtual ~AttentionExec() = default;
  virtual void forward(float* att, const float* q, const float* k, const float* v, const AttnShape& s, int q_stride,
                       int kv_stride) const = 0;
};

struct Linear {
  Tensor w;  // [out, in]; with an executor its values may be dropped (shape kept)
  Tensor b;  // [out], empty when the layer has no bias
  std::shared_ptr<const LinearExec> exec;  // null: w (and b) through BLAS
  int out() const { return (int)w.dim(0); }
  int in() const { return (int)w.dim(1); }
};

struct Norm {
  Tensor g;  // [dim]
  Tensor b;  // [dim], empty for RMSNorm without bias
};

// The block's tensors; nn/block.h has its structure as tables (names, sites, widths).
struct Block {
  Norm attn_norm, mlp_norm;
  Linear q, k, v, o;
  Linear gate, up, down;  // gate is empty unless cfg.gated
  std::shared_ptr<const AttentionExec> attn_exec;  // null: attention in float
};

struct Model {
  Config cfg;
  Tensor tok_embd;   // [vocab, dim]
  Tensor pos_embd;   // [positions, dim] (learned positions)
  Tensor type_embd;  // [n_types, dim]
  Linear patch_embd; // [dim, patch_dim]
  Tensor cls;        // [dim]
  Norm embd_norm;    // BERT: LayerNorm after the embeddings (empty g when absent)
  std::vector<Block> blocks;
  Norm final_norm;   // empty g when absent
  Linear pooler_fc;  // BERT pooler (cfg.pooler)
  Linear head;       // [n_out, dim]; w empty when cfg.tied_head
  Tokenizer tok;     // empty for image models
  std::vector<std::string> labels;  // class names of classifiers, when known

  const Tensor& head_w() const { return cfg.tied_head ? tok_embd : head.w; }
};

// Every named tensor of a model with a stable name (GGUF-style: "blk.3.attn_q.weight").
// The single place that enumerates parameters: used by inspect, export, the
// optimizer and the quantization passes.
struct NamedTensor {
  std::string name;
  Tensor* t;
};
std::vector<NamedTensor> named_tensors(Model& m);
int64_t parameter_count(const Model& m);

// Fills shapes of a freshly configured model with zeros (loaders then fill values),
// so that every family's tensor set is decided in one place.
// With values = false only the shapes are set (a model described, e.g. to write one
// tensor at a time).
void allocate(Model& m, bool linear_bias, bool norm_bias, bool values = true);
// Checks that a config is coherent and that its parameter count is at most
// max_params (the number of values the file holds), before anything is allocated.
void validate_config(const Config& c, int64_t max_params);
int64_t expected_parameters(const Config& c);
// Checks that tensor shapes agree with the config; throws bad_input naming the first mismatch.
void validate(const Model& m);
// Refuses a model holding NaN or infinity in a weight (bad_input naming source, the tensor and the place).
void check_finite_weights(const Model& m, const std::string& source);

const char* to_string(NormKind);
const char* to_string(ActKind);
const char* to_string(PosKind);

}  // namespace tq
