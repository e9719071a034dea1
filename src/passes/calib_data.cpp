#include "core/error.h"
#include "nn/accuracy.h"
#include "nn/kld.h"
#include "nn/perplexity.h"
#include "passes/pass.h"

namespace tq {

CalibData load_calib(const DataSpec& spec, const Model& m) {
  CalibData c;
  if (spec.kind == "text") {
    for (auto& s : text_sequences(m.tok, spec)) {
      Batch b;
      b.B = 1;
      b.T = (int)s.tokens.size();
      b.tokens = s.tokens;
      c.batches.push_back(std::move(b));
    }
  } else if (spec.kind == "mnist") {
    c.batches = image_batches(m.cfg, read_mnist(spec.path, spec), 32);
  } else {
    c.batches = text_batches(m, read_sst2(spec.path, spec));
  }
  if (c.empty()) bad_input("calibration data {} is empty", spec.path);
  return c;
}

double calib_kld(const Model& m, Hooks& hooks, const Model& ref, const CalibData& calib) {
  if (!m.cfg.is_lm()) return mean_of(eval_classifier(m, calib.batches, hooks, &ref, nullptr, "score").kld);
  std::vector<TextSeq> seqs;
  for (const Batch& b : calib.batches)
    for (int i = 0; i < b.B; i++)
      seqs.push_back({std::vector<int32_t>(b.tokens.begin() + (int64_t)i * b.T, b.tokens.begin() + (int64_t)(i + 1) * b.T)});
  return eval_lm(m, seqs, hooks, &ref, nullptr, "score").kld_mean();
}

}  // namespace tq
