#include "core/error.h"
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
    return c;
  }
  bad_input("calibration data of kind '{}' is not supported yet", spec.kind);
}

}  // namespace tq
