#include "eval/evaluate.h"

#include "core/error.h"
#include "eval/perplexity.h"

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
  bad_input("data kind '{}' is not supported yet", data.kind);
}

}  // namespace tq
