// libFuzzer target: a llama2.c checkpoint and its tokenizer file. The input is
// a little-endian u32 n, then n bytes of checkpoint, then the tokenizer. A
// model that loads runs one forward. Any input ends in a model or a tq::Error.
#include <cstring>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/load.h"
#include "nn/forward.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t n;
  std::memcpy(&n, data, 4);
  if (n > size - 4) n = (uint32_t)(size - 4);
  std::string ckpt = tq::fuzz::put_file("model.bin", tq::fuzz::as_text(data + 4, n));
  std::string tok = tq::fuzz::put_file("tok.bin", tq::fuzz::as_text(data + 4 + n, size - 4 - n));
  try {
    tq::Model m = tq::load_llama2c_model(ckpt, tok);
    const int32_t tokens[] = {1, 0};
    tq::Input in;
    in.T = 2;
    in.tokens = tokens;
    tq::Workspace ws;
    tq::forward(m, in, ws);
  } catch (const tq::Error&) {
  }
  return 0;
}
