// Tokenizers: text <-> token ids. One plain struct holds the vocabulary of
// every kind; encode/decode dispatch on the kind.
//   spm:       SentencePiece-style BPE by piece score with byte fallback (LLaMA, llama2.c)
//   bpe:       byte-level BPE by merge rank (GPT-2, OPT)
//   wordpiece: greedy longest-match-first with "##" continuations (BERT)
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tq {

enum class TokKind { none, spm, bpe, wordpiece };

// How byte-level BPE splits text before merging: GPT-2's pattern, or the Llama-3 pattern (numbers
// in runs of up to three digits, a non-letter may lead a word, newlines end punctuation runs) and
// Qwen2's (the same with one digit per piece). Hugging Face writes the latter two as a Split
// pre-tokenizer before ByteLevel; GGUF as tokenizer.ggml.pre "llama-bpe" and "qwen2".
enum class BpeSplit : uint8_t { gpt2, llama3, qwen2 };
// The pattern of a Split pre-tokenizer as tokenizer.json writes it (Llama-3, Qwen2; GPT-2's: "").
const char* bpe_split_regex(BpeSplit split);
// The split's GGUF name (tokenizer.ggml.pre: "gpt-2", "llama-bpe", "qwen2"), also the tquant directory's.
const char* bpe_split_name(BpeSplit split);
// The split a GGUF name stands for ("default" is GPT-2's pattern); bad_input for other families' splits.
BpeSplit bpe_split_named(const std::string& name);

// GGUF token types.
enum TokType : int32_t { tok_normal = 1, tok_unknown = 2, tok_control = 3, tok_user = 4, tok_unused = 5, tok_byte = 6 };

struct Tokenizer {
  TokKind kind = TokKind::none;
  std::vector<std::string> pieces;  // spm pieces use ' ' where SentencePiece writes U+2581
  std::vector<float> scores;        // spm merge priority
  std::vector<int32_t> types;       // TokType per piece
  std::vector<std::string> merges;  // bpe: "left right", in rank order
  int bos = -1, eos = -1, unk = -1, pad = -1, sep = -1, cls = -1, mask = -1;
  bool add_bos = true;
  bool add_space_prefix = true;  // spm: prepend ' ' to non-empty text
  bool lowercase = false;        // wordpiece
  BpeSplit split = BpeSplit::gpt2;  // bpe
  bool ignore_merges = false;       // bpe: a split piece that is in the vocabulary is one token (Llama-3)
  bool nfc = false;                 // bpe: the text is NFC-normalised first (Qwen2)

  // Built by finalize() from the fields above (owning keys, so copies stay valid).
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> index;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> merge_rank;
  int32_t byte_id[256];

  bool empty() const { return kind == TokKind::none || pieces.empty(); }
  int size() const { return (int)pieces.size(); }
  // Builds lookup tables and checks consistency; throws bad_input on a broken vocabulary.
  void finalize();
  int32_t find(std::string_view piece) const {
    auto it = index.find(piece);
    return it == index.end() ? -1 : it->second;
  }
};

// Encodes text; with bos the tokenizer's BOS comes first (wordpiece: [CLS] first and [SEP] last).
std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text, bool bos);

// The pre-tokenizers, exposed for tests: GPT-2's split (byte ranges of the pieces), and
// BERT's basic tokenizer (the words WordPiece then cuts).
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(std::string_view text);
std::vector<std::pair<size_t, size_t>> llama3_pretokenize(std::string_view text, int max_digits);
std::vector<std::pair<size_t, size_t>> bpe_pretokenize(BpeSplit split, std::string_view text);
std::vector<std::string> bert_pretokenize(std::string_view text, bool lowercase);
// The text of one token as it appears after token prev (spm drops the space after BOS).
std::string decode_token(const Tokenizer& tok, int32_t prev, int32_t id);
// A SentencePiece piece as text: U+2581 (the meta symbol SentencePiece writes for a space) → ' '.
std::string spm_unescape(std::string_view piece);
std::string decode(const Tokenizer& tok, const std::vector<int32_t>& ids);

}  // namespace tq
