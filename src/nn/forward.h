// The forward (and backward) of every family: one config-driven block.
//
// Sites are the places where a quantized kernel would read an activation. The
// forward calls Hooks::forward at each one with the activation in place, so a
// hook can record it (calibration), fake-quantize it (simulation) or leave it
// alone; in training, Hooks::backward turns the gradient arriving at the
// hooked value into the gradient of the value before the hook.
#pragma once
#include <vector>

#include "core/tensor.h"
#include "nn/block.h"
#include "nn/model.h"

namespace tq {

struct Hooks {
  virtual ~Hooks() = default;
  // x is [rows, cols]: tokens × features for linear inputs and q/k/v, (batch·head·query) × keys for probs.
  virtual void forward(Site site, int layer, float* x, int rows, int cols) {}
  // dx arrives as the gradient w.r.t. the hooked value and must leave as the gradient w.r.t. its input.
  virtual void backward(Site site, int layer, float* dx, int rows, int cols) {}
};
Hooks& no_hooks();

// Two hooks in order at every site (e.g. simulate, then observe); backward in reverse.
struct HookChain : Hooks {
  Hooks &first, &second;
  HookChain(Hooks& a, Hooks& b) : first(a), second(b) {}
  void forward(Site s, int layer, float* x, int rows, int cols) override {
    first.forward(s, layer, x, rows, cols);
    second.forward(s, layer, x, rows, cols);
  }
  void backward(Site s, int layer, float* dx, int rows, int cols) override {
    second.backward(s, layer, dx, rows, cols);
    first.backward(s, layer, dx, rows, cols);
  }
};

// B sequences of T tokens (or T patches for image models), all of the same length.
struct Input {
  int B = 1, T = 0;
  const int32_t* tokens = nullptr;  // [B·T]
  const int32_t* types = nullptr;   // [B·T] token types (BERT), optional
  const float* patches = nullptr;   // [B·T·patch_dim]
  int pos0 = 0;                     // position of token 0 (decoding with a cache)
  bool last_only = false;           // LM logits only for the last token of each sequence
};

// Owned inputs: what datasets produce and calibration and training consume.
struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens, types;  // [B·T]
  std::vector<float> patches;          // [B·T·patch_dim]
  std::vector<int32_t> labels;         // [B] class labels (classifiers)
  Input input() const {
    Input in;
    in.B = B, in.T = T;
    in.tokens = tokens.empty() ? nullptr : tokens.data();
    in.types = types.empty() ? nullptr : types.data();
    in.patches = patches.empty() ? nullptr : patches.data();
    return in;
  }
};

// Keys and values of past positions, per layer [B, max_seq, kv_dim].
struct KVCache {
  int B = 0, max_seq = 0, len = 0;
  std::vector<Tensor> k, v;
  void init(const Config& c, int batch, int max_seq);
};

// Activations of one layer. In training every layer keeps its own (the tape);
// in inference one set is reused by all layers.
struct LayerActs {
  Tensor x;           // [N, D] block input (residual stream)
  Tensor a;           // [N, D] attention input after norm (pre-norm) or copy of x (post-norm): site qkv_in
  Tensor a_mean, a_rstd;
  Tensor q, k, v;     // [N, q_dim|kv_dim] after RoPE: sites q, k, v
  Tensor p_raw, p;    // [B, H, Sq, Sk] softmax output, and after the probs hook
  Tensor att;         // [N, q_dim] attention output: site o_in
  Tensor h;           // [N, D] x + attention (residual after attention, before the post-norm)
  Tensor hn, h_mean, h_rstd;  // post-norm: norm(h), the new residual
  Tensor m;           // [N, D] MLP input after norm (pre) or copy of hn (post): site up_in
  Tensor m_mean, m_rstd;
  Tensor g, u;        // [N, F] gate and up projections (before the activation)
  Tensor f;           // [N, F] activation output: site down_in
  Tensor y;           // [N, D] h + MLP (pre-norm block output) or before the final post-norm
  Tensor y_mean, y_rstd;
};

struct Workspace {
  std::vector<LayerActs> layers;  // n_layers when training, else 1
  Tensor x;                        // [N, D] embeddings, then the residual stream
  Tensor emb_sum, emb_mean, emb_rstd;  // BERT embedding norm input and stats
  Tensor xf, xf_mean, xf_rstd;     // final norm output and stats
  Tensor pooled, pool_pre;         // [B, D] pooled (and pre-tanh for the pooler)
  Tensor head_in;                  // [rows, D] input to the head (site head_in)
  Tensor logits;                   // [rows, n_out]
  bool train = false;
  int B = 0, S = 0, T = 0;         // S = T plus the CLS token
};

// Bytes of the activations one forward of B sequences of T tokens holds, with
// keys over Sk positions (0: T; a cache makes it longer), every layer's when training.
int64_t forward_bytes(const Config& c, int64_t B, int64_t T, bool train, int64_t Sk = 0);
// bad_input when `copies` such forwards at once (one per thread) would not fit in this machine's memory.
void check_forward_memory(const Config& c, int64_t B, int64_t T, bool train, int copies, int64_t Sk = 0);

// Runs the model. Logits land in ws.logits: [B·T, n_out] for LMs (or [B, n_out]
// with last_only), [B, n_out] for classifiers. With a cache, keys/values of
// this call are appended after cache->len positions (the caller advances len).
void forward(const Model& m, const Input& in, Workspace& ws, Hooks& hooks = no_hooks(), KVCache* cache = nullptr);

// The pieces forward() is made of (embeddings, then every block, then the head),
// for measurements that feed one block its own inputs (SensiBoost's
// sensitivity compares a block's output under quantized weights on the fp
// model's inputs of that layer). forward_embed leaves in's embeddings in
// ws.x; forward_block runs block `layer` on the residual stream the caller
// put in ws.x ([in.B·S, dim], S = in.T plus a CLS token) in place. No cache. With
// ws.train set, forward_block keeps the layer's tape and backward_block turns
// d(block output) in dx ([in.B·S, dim]) into d(block input) in place, adding the
// block's parameter gradients into grads (block reconstruction, RepQuant §1.7).
void forward_embed(const Model& m, const Input& in, Workspace& ws);
// The final norm, pooling and head on the residual stream the caller put in ws.x
// (the output of the last block): logits in ws.logits as forward() leaves them.
void forward_head(const Model& m, const Input& in, Workspace& ws, Hooks& hooks = no_hooks());
void forward_block(const Model& m, int layer, const Input& in, Workspace& ws, Hooks& hooks = no_hooks());
void backward_block(const Model& m, Model& grads, int layer, const Input& in, Workspace& ws, float* dx,
                    Hooks& hooks = no_hooks());

// Backward of the last forward (ws.train must have been set): dlogits has the
// shape of ws.logits; parameter gradients are added into grads (a model of the
// same shapes).
void backward(const Model& m, Model& grads, const Input& in, Workspace& ws, const float* dlogits,
              Hooks& hooks = no_hooks());

// A model with the same tensors as m, all zero (gradients, optimizer moments).
Model zeros_like(const Model& m);

}  // namespace tq
