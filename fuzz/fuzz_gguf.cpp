// libFuzzer target: any bytes given to the GGUF parser and model builder end
// in a model or a tq::Error, never a crash, hang or huge allocation.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/gguf.h"
#include "io/load.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tq::GgufFile g = tq::parse_gguf({data, size});
    for (auto& t : g.tensors) {
      try {
        g.read(t);
      } catch (const tq::Error&) {
      }
    }
    tq::model_from_gguf(g);
  } catch (const tq::Error&) {
  }
  return 0;
}
