// The channel-affine fold (docs/methods.md §0.3), the one implementation that
// SmoothQuant, OutlierTune and RepQuant share. At a norm-fed site (qkv_in or
// up_in of a layer) the value x becomes x' = (x − d) ⊘ a while every linear
// that reads it computes the same function:
//   consumers  W' = W·diag(a),  b' = b + W·d   (q, k, v together; gate and up together)
//   pre-norm   the norm emits x' itself: γ' = γ ⊘ a, β' = (β − d) ⊘ a (an RMSNorm gains a bias)
//   post-norm  the norm output is also the residual, so the norm stays and (1/a, d) goes into
//              the site's quantize op (QuantSpec::pre_inv / pre_shift), composed with any
//              transform already there.
// Arithmetic is float64, cast to float once per fold. The fold refuses weights or
// a site that already have quantizers: fold first, then quantize.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/forward.h"
#include "quant/plan.h"

namespace tq {

// What a fold did, for the plan notes (design.md: every fold pass reports the
// weight error it causes). Per consumer weight: the SQNR of per-row symmetric
// round-to-nearest at `bits` before and after the fold, with each input column
// weighted by the typical magnitude of its activation, Σ(W·s)² / Σ(E·s)², s_j the
// mean |x_j| before the fold and s_j / a_j after it. The signal term is the same in
// both spaces, so the two figures compare the output error weight rounding causes.
struct FoldRecord {
  std::string site;                   // "blk.3.qkv_in"
  bool into_norm = true;              // false: into the site's quantize op (post-norm)
  std::vector<std::string> weights;   // "blk.3.attn_q.weight", ...
  std::vector<double> sqnr_before_db, sqnr_after_db;  // empty when not measured
};
nlohmann::json to_json(const FoldRecord& r);

// Measures the record's SQNR at `bits` with s = the mean |x| of each channel before the fold.
struct SqnrProbe {
  int bits = 0;
  std::vector<double> x_scale;
};

// Folds x' = (x − d) ⊘ a at `site` of `layer`, a site that a norm computes (site_table():
// qkv_in, up_in). a and d have cfg.dim entries; every a_c must be finite and non-zero.
// Parts with nothing to do (a ≡ 1, or d ≡ 0) are skipped, so the identity changes nothing.
FoldRecord fold_channel_affine(Model& m, QuantPlan& plan, Site site, int layer, const std::vector<double>& a,
                               const std::vector<double>& d, const SqnrProbe& probe = {});

// SQNR (dB) of w under per-row symmetric round-to-nearest with min-max ranges, column c
// weighted by col_weight[c] (empty: unweighted).
double row_rtn_sqnr_db(const Tensor& w, int bits, const std::vector<double>& col_weight = {});

}  // namespace tq
