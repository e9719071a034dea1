#include "eval/evaluate.h"

#include "core/error.h"
#include "nn/accuracy.h"
#include "nn/perplexity.h"

namespace tq {

EvalResult evaluate(const Model& m, const DataSpec& data, Hooks& hooks, const Model* ref, Hooks* ref_hooks) {
  EvalResult r;
  if (data.kind == "text") {
    auto seqs = text_sequences(m.tok, data);
    LmEval e = eval_lm(m, seqs, hooks, ref, ref_hooks);
    r.metric = "ppl";
    r.value = e.ppl();
    r.ref_value = e.ref_ppl();
    r.json = e.json();
    r.json["sequences"] = seqs.size();
    return r;
  }
  std::vector<Batch> batches = data.kind == "mnist" ? image_batches(m.cfg, read_mnist(data.path, data))
                                                   : text_batches(m, read_sst2(data.path, data));
  ClassEval e = eval_classifier(m, batches, hooks, ref, ref_hooks);
  r.metric = "accuracy";
  r.value = e.accuracy();
  r.json = e.json();
  if (ref) r.ref_value = e.total ? (double)e.ref_correct / e.total : 0;
  return r;
}

}  // namespace tq
