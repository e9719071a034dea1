// libFuzzer target: any bytes given to the importance-matrix reader (llama.cpp's imatrix.gguf
// or the older .dat) end in entries or a tq::Error, never a crash.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/imatrix.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tq::Imatrix im = tq::parse_imatrix({data, size}, "fuzz");
    for (auto& [name, e] : im.entries) {
      try {
        im.mean_square(name, (int64_t)e.sum2.size());
      } catch (const tq::Error&) {
      }
    }
  } catch (const tq::Error&) {
  }
  return 0;
}
