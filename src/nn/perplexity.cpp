#include "nn/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "core/threads.h"
#include "nn/kld.h"
#include "nn/ops.h"

namespace tq {

double LmEval::ppl() const { return std::exp(nll()); }
double LmEval::ref_ppl() const { return tokens ? std::exp(ref_nll_sum / tokens) : 0; }

double LmEval::ppl_stderr() const {
  if (tokens < 2) return 0;
  double mean = nll(), var = (nll_sq / tokens - mean * mean) * tokens / (tokens - 1);
  return ppl() * std::sqrt(std::max(var, 0.0) / tokens);
}

double LmEval::kld_mean() const { return mean_of(kld); }
double LmEval::kld_p99() const { return p99_of(kld); }

nlohmann::json LmEval::json() const {
  nlohmann::json j = {{"ppl", ppl()}, {"ppl_stderr", ppl_stderr()}, {"nll", nll()}, {"tokens", tokens}};
  if (compared) {
    j["kld_mean"] = kld_mean();
    j["kld_p99"] = kld_p99();
    j["top1_agree"] = top1_agree();
    j["ref_ppl"] = ref_ppl();
  }
  return j;
}

namespace {
struct SeqResult {
  double nll_sum = 0, nll_sq = 0, ref_nll_sum = 0;
  int64_t tokens = 0, top1_same = 0;
  std::vector<float> kld;
};
}  // namespace

LmEval eval_lm(const Model& m, const std::vector<TextSeq>& seqs, Hooks& hooks, const Model* ref, Hooks* ref_hooks,
               const char* label) {
  TQ_CHECK_INPUT(m.cfg.is_lm(), "perplexity needs a language model");
  if (ref) TQ_CHECK_INPUT(ref->cfg.n_out == m.cfg.n_out, "the reference model has a different vocabulary");
  const int V = m.cfg.n_out;
  for (const TextSeq& s : seqs)
    TQ_CHECK_INPUT((int)s.tokens.size() <= m.cfg.max_seq || m.cfg.pos != PosKind::learned,
                   "a sequence of {} tokens is longer than the model's {} positions", s.tokens.size(), m.cfg.max_seq);
  int64_t total = 0;
  for (auto& s : seqs) total += (int64_t)s.tokens.size() - 1 - s.score_from;
  Progress prog(label, total, "tok");
  std::vector<SeqResult> res(seqs.size());
  // Each thread scores whole sequences with single-threaded BLAS; results are
  // merged in sequence order, so the figures do not depend on the schedule.
  SerialBlas serial;
#pragma omp parallel
  {
    Workspace ws, ref_ws;
    std::vector<double> lp(V), lq(V);
#pragma omp for schedule(dynamic, 1)
    for (size_t k = 0; k < seqs.size(); k++) {
      const TextSeq& s = seqs[k];
      SeqResult& r = res[k];
      Input in;
      in.tokens = s.tokens.data();
      in.T = (int)s.tokens.size();
      forward(m, in, ws, hooks);
      if (ref) forward(*ref, in, ref_ws, ref_hooks ? *ref_hooks : no_hooks());
      for (int i = s.score_from; i + 1 < in.T; i++) {
        const float* row = ws.logits.row(i);
        double lse = log_softmax_row(ref ? lq.data() : nullptr, row, V);
        double nll = lse - row[s.tokens[i + 1]];
        r.nll_sum += nll;
        r.nll_sq += nll * nll;
        r.tokens++;
        if (ref) {
          const float* rrow = ref_ws.logits.row(i);
          log_softmax_row(lp.data(), rrow, V);
          r.kld.push_back((float)kl_logprobs(lp.data(), lq.data(), V));
          r.ref_nll_sum -= lp[s.tokens[i + 1]];
          if (std::max_element(row, row + V) - row == std::max_element(rrow, rrow + V) - rrow) r.top1_same++;
        }
      }
#pragma omp critical
      prog.add(r.tokens);
    }
  }
  prog.finish();
  LmEval out;
  out.compared = ref != nullptr;
  for (auto& r : res) {
    out.nll_sum += r.nll_sum;
    out.nll_sq += r.nll_sq;
    out.tokens += r.tokens;
    out.top1_same += r.top1_same;
    out.ref_nll_sum += r.ref_nll_sum;
    out.kld.insert(out.kld.end(), r.kld.begin(), r.kld.end());
  }
  return out;
}

}  // namespace tq
