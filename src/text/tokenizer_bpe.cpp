#include "core/error.h"
#include "text/tokenizer.h"

namespace tq {

// Byte-level BPE (GPT-2/OPT) arrives with the model-families work.
std::vector<int32_t> encode_bpe(const Tokenizer&, std::string_view) {
  bad_input("byte-level BPE tokenization is not supported yet");
}
std::string decode_bpe_piece(const std::string& p) { return p; }
std::vector<int32_t> encode_wordpiece(const Tokenizer&, std::string_view) {
  bad_input("WordPiece tokenization is not supported yet");
}

}  // namespace tq
