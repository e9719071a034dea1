// A SentencePiece BPE vocabulary trained on a corpus with the sentencepiece
// library, and its conversion into the project's Tokenizer. The options are
// chosen so that the project's encoder gives the same ids as sentencepiece's:
// no normalization, whitespace kept as it is, a dummy-prefix space, byte fallback.
#pragma once
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace tq {

// Trains on the given lines (one sentence each); returns the serialized model proto.
// Ids: 0 <unk>, 1 <s>, 2 </s>, then the 256 byte pieces, then the merges.
std::string train_spm_bpe(const std::vector<std::string>& lines, int vocab_size);

// The vocabulary of a serialized sentencepiece model as a Tokenizer (kind spm).
Tokenizer tokenizer_from_spm(const std::string& model_proto);

}  // namespace tq
