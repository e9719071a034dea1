#include "core/error.h"
#include "eval/accuracy.h"
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

}  // namespace tq
