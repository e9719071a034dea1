#include "nn/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/ranks.h"
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

// Every rank's results on every rank, in sequence order; as doubles (exact for the
// counts and the float KLDs): per sequence five figures, then the KLDs.
void gather_results(std::vector<SeqResult>& res, ranks::Share mine) {
  if (ranks::size() == 1) return;
  std::vector<std::vector<double>> v;
  for (int64_t k = mine.begin; k < mine.end; k++) {
    const SeqResult& r = res[k];
    v.push_back({r.nll_sum, r.nll_sq, r.ref_nll_sum, (double)r.tokens, (double)r.top1_same});
    v.back().insert(v.back().end(), r.kld.begin(), r.kld.end());
  }
  const std::vector<std::vector<double>> all = ranks::gather_items((int64_t)res.size(), v);
  for (size_t k = 0; k < res.size(); k++) {
    SeqResult& r = res[k];
    const std::vector<double>& a = all[k];
    r.nll_sum = a[0], r.nll_sq = a[1], r.ref_nll_sum = a[2];
    r.tokens = (int64_t)a[3], r.top1_same = (int64_t)a[4];
    r.kld.assign(a.begin() + 5, a.end());
  }
}
}  // namespace

LmEval eval_lm(const Model& m, const std::vector<TextSeq>& seqs, Hooks& hooks, const Model* ref, Hooks* ref_hooks,
               const char* label) {
  TQ_CHECK_INPUT(m.cfg.is_lm(), "perplexity needs a language model");
  if (ref) TQ_CHECK_INPUT(ref->cfg.n_out == m.cfg.n_out, "the reference model has a different vocabulary");
  const int V = m.cfg.n_out;
  for (const TextSeq& s : seqs)
    TQ_CHECK_INPUT((int)s.tokens.size() <= m.cfg.max_seq || m.cfg.pos != PosKind::learned,
                   "a sequence of {} tokens is longer than the model's {} positions", s.tokens.size(), m.cfg.max_seq);
  // Under mpirun each rank scores its share of the sequences (core/ranks.h).
  const ranks::Share mine = ranks::my_share((int64_t)seqs.size());
  int64_t total = 0, longest = 0;
  for (int64_t k = mine.begin; k < mine.end; k++) {
    total += (int64_t)seqs[k].tokens.size() - 1 - seqs[k].score_from;
    longest = std::max<int64_t>(longest, seqs[k].tokens.size());
  }
  if (longest > 0)  // every thread holds a workspace (two when comparing): refuse before any work
    check_forward_memory(m.cfg, 1, longest, false,
                         (int)std::min<int64_t>(num_threads(), mine.end - mine.begin) * (ref ? 2 : 1));
  Progress prog(label, total, "tok");
  std::vector<SeqResult> res(seqs.size());
  // Each thread scores whole sequences with single-threaded BLAS; results are
  // merged in sequence order, so the figures do not depend on the schedule.
  SerialBlas serial;
  struct ThreadState {
    Workspace ws, ref_ws;
    std::vector<double> lp, lq;
  };
  parallel_for_with(
      mine.end - mine.begin, [&] { return ThreadState{{}, {}, std::vector<double>(V), std::vector<double>(V)}; },
      [&](ThreadState& t, int64_t i_mine) {
        const int64_t k = mine.begin + i_mine;
        const TextSeq& s = seqs[k];
        SeqResult& r = res[k];
        Input in;
        in.tokens = s.tokens.data();
        in.T = (int)s.tokens.size();
        forward(m, in, t.ws, hooks);
        if (ref) forward(*ref, in, t.ref_ws, ref_hooks ? *ref_hooks : no_hooks());
        for (int i = s.score_from; i + 1 < in.T; i++) {
          const float* row = t.ws.logits.row(i);
          double lse = log_softmax_row(ref ? t.lq.data() : nullptr, row, V);
          double nll = lse - row[s.tokens[i + 1]];
          if (!std::isfinite(nll))
            bad_input("sequence {}, position {}: the model's output is not finite (NLL {}); its weights or plan "
                      "are broken", k, i, nll);
          r.nll_sum += nll;
          r.nll_sq += nll * nll;
          r.tokens++;
          if (ref) {
            const float* rrow = t.ref_ws.logits.row(i);
            if (!std::isfinite(log_softmax_row(t.lp.data(), rrow, V)))
              bad_input("sequence {}, position {}: the reference model's output is not finite", k, i);
            r.kld.push_back((float)kl_logprobs(t.lp.data(), t.lq.data(), V));
            r.ref_nll_sum -= t.lp[s.tokens[i + 1]];
            if (std::max_element(row, row + V) - row == std::max_element(rrow, rrow + V) - rrow) r.top1_same++;
          }
        }
#pragma omp critical
        prog.add(r.tokens);
      });
  prog.finish();
  gather_results(res, mine);
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
