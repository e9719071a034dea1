// The structure of the one block as data: its sites, its norms and its
// linears, a row each. Everything that walks a block — tensor names and plan
// keys, folds, the integer runtime, mixed precision, the loaders' checks —
// reads these tables, so another linear (or a family wired differently) is a
// row here, not an edit in every pass.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nn/model.h"

namespace tq {

// Sites: the places where a quantized kernel would read an activation.
enum class Site : int { qkv_in, q, k, v, probs, o_in, up_in, down_in, head_in };
constexpr int kNumSites = 9;

enum class Slot : int { q, k, v, o, gate, up, down };
constexpr int kNumSlots = 7;

// The parts of a block, each the linears that read one site. The *_out parts
// (o, down) write into the residual stream.
enum class Part : int { attn_in, attn_out, mlp_in, mlp_out };
constexpr int kNumParts = 4;
const char* part_name(Part p);

// The widths a linear maps between: cfg.dim, q_dim, kv_dim, hidden.
enum class Width : int { model, q, kv, hidden };
int width(const Config& c, Width w);

// What computes a site's channels, i.e. where a per-channel scale x' = x ⊘ s of
// the site can be put so that the site's readers undo it with s:
//   by_norm      the block norm `norm` emits it (pre-norm; in a post-norm block that
//                output is also the residual, so a fold goes into the site's quantize op)
//   by_rows      row c of linear `linear` (and its bias) is channel c; q and k are
//                after RoPE, so the two channels of a rotation pair share one scale
//   by_kv_heads  channel h·hd + j is row (h·KV/H)·hd + j of `linear`: o_in is a mix of
//                v's rows per head, and query heads that share a kv head share the scale
//   none         no such op in the block (probs: the softmax; head_in: after the blocks)
// gated_only: only when the MLP is act(gate) ⊙ up, where a scale of up's rows passes
// through the product (not through act alone).
struct Producer {
  enum Kind { none, by_norm, by_rows, by_kv_heads };
  Kind kind = none;
  Norm Block::*norm = nullptr;
  Slot linear = Slot::q;
  bool gated_only = false;
};

struct SiteDef {
  Site site;
  const char* name;
  Producer producer;
  // q and k are read by the scores q·kᵀ: a scale of one is undone in the other's rows.
  std::optional<Slot> partner;
};
// In Site order.
const std::array<SiteDef, kNumSites>& site_table();
inline const SiteDef& site_def(Site s) { return site_table()[(int)s]; }
const char* site_name(Site s);
std::optional<Site> site_from_name(std::string_view name);
// "qkv_in,o_in,..." → sites, each once; bad_input on an unknown name.
std::vector<Site> parse_sites(std::string_view list);
// The sites a block norm computes (qkv_in, up_in): where the channel-affine folds go.
const std::vector<Site>& norm_fed_sites();

struct NormDef {
  Norm Block::*member;
  const char* name;  // GGUF: blk.N.<name>.weight / .bias
};
const std::array<NormDef, 2>& norm_table();

struct LinearDef {
  Slot slot;
  const char* name;       // GGUF: blk.N.<name>.weight / .bias
  Linear Block::*member;
  Site input;             // the site it reads
  Part part;
  Width out, in;
  bool gated_only;        // present only when cfg.gated (gate)
};
// In Slot order, which is the order of every list of a block's linears.
const std::array<LinearDef, kNumSlots>& linear_table();
inline const LinearDef& linear_def(Slot s) { return linear_table()[(int)s]; }
std::optional<Slot> slot_from_name(std::string_view name);  // "attn_q" → q
bool has_linear(const Config& c, Slot s);
// The sites that linears read, each once, in table order (qkv_in, o_in, up_in, down_in).
const std::vector<Site>& linear_input_sites();

// Names of block tensors and plan keys: "blk.3.<what>". The one place they are formatted.
std::string block_key(int layer, std::string_view what);
std::string weight_name(int layer, Slot s);  // "blk.3.attn_q.weight"
// The layer and the rest of "blk.<layer>.<rest>", the layer a plain decimal below n_layers
// (no sign, no leading zero, no overflow); nullopt for anything else.
std::optional<std::pair<int, std::string_view>> split_block_key(std::string_view key, int n_layers);
// The inverse of weight_name for a model of n_layers layers.
struct WeightRef {
  int layer;
  Slot slot;
};
std::optional<WeightRef> parse_weight_name(std::string_view name, int n_layers);

// The linears of a block that it has (shape set; an executor's linear keeps its
// shape), in table order, with their GGUF names.
struct NamedLinear {
  std::string name;
  Linear* lin;
  Slot slot;
};
std::vector<NamedLinear> block_linears(Block& b);
// The linears of a block that read `site` (q, k, v for qkv_in; gate, when present, and up for up_in).
std::vector<NamedLinear> site_consumers(Block& b, Site site);

}  // namespace tq
