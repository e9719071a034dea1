// Language-model evaluation: perplexity, and against a reference model the
// KL divergence of next-token distributions and top-1 agreement, streamed one
// sequence at a time (never holding all logits).
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/forward.h"
#include "text/dataset.h"

namespace tq {

struct LmEval {
  double nll_sum = 0, nll_sq = 0;
  int64_t tokens = 0;
  // Against a reference (when given).
  bool compared = false;
  double ref_nll_sum = 0;  // the reference's own NLL on the same tokens
  std::vector<float> kld;  // per scored token: KL(P_ref ‖ P_model)
  int64_t top1_same = 0;

  double nll() const { return tokens ? nll_sum / tokens : 0; }
  double ppl() const;
  double ppl_stderr() const;  // standard error of PPL from the per-token NLL spread
  double kld_mean() const;
  double kld_p99() const;
  double top1_agree() const { return tokens ? (double)top1_same / tokens : 0; }
  double ref_ppl() const;
  nlohmann::json json() const;  // stable keys: ppl, nll, tokens, kld_mean, kld_p99, top1_agree
};

LmEval eval_lm(const Model& m, const std::vector<TextSeq>& seqs, Hooks& hooks = no_hooks(),
               const Model* ref = nullptr, Hooks* ref_hooks = nullptr, const char* label = "eval");

}  // namespace tq
