// libFuzzer target: any bytes given to the safetensors parser end in tensors
// or a tq::Error, never a crash.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tq::SafetensorsFile f = tq::parse_safetensors({data, size});
    for (auto& t : f.tensors) {
      try {
        f.read_f32(t);
      } catch (const tq::Error&) {
      }
    }
  } catch (const tq::Error&) {
  }
  return 0;
}
