// libFuzzer target: vocab.txt of a BERT directory (one WordPiece piece per
// line). A vocabulary that loads encodes and decodes a mixed text. Any input
// ends in a tokenizer or a tq::Error.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/hf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = tq::fuzz::sub_dir("vocab_txt");
  static const nlohmann::json config = nlohmann::json::object();
  tq::fuzz::put_file("vocab_txt/vocab.txt", tq::fuzz::as_text(data, size));
  try {
    tq::Tokenizer tok = tq::load_hf_tokenizer(dir, config);
    auto ids = tq::encode(tok, "Hello, world! It's na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 unaffable", true);
    tq::decode(tok, ids);
  } catch (const tq::Error&) {
  }
  return 0;
}
