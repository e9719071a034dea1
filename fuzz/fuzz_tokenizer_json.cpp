// libFuzzer target: tokenizer.json (BPE with byte fallback, byte-level BPE,
// WordPiece). A tokenizer that loads encodes and decodes a mixed text. Any
// input ends in a tokenizer or a tq::Error.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/hf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = tq::fuzz::sub_dir("tokenizer_json");
  static const nlohmann::json config = nlohmann::json::object();
  tq::fuzz::put_file("tokenizer_json/tokenizer.json", tq::fuzz::as_text(data, size));
  try {
    tq::Tokenizer tok = tq::load_hf_tokenizer(dir, config);
    if (!tok.empty()) {
      auto ids = tq::encode(tok, "Hello, world! It's 2024: na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xff\n",
                            true);
      tq::decode(tok, ids);
    }
  } catch (const tq::Error&) {
  }
  return 0;
}
