// WordPiece (BERT): the basic tokenizer (clean up, CJK characters apart,
// lower-casing with accents stripped, split on white space and punctuation),
// then greedy longest-match-first over the vocabulary with "##" continuations.
#include "core/error.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace tq {

static bool is_cjk(char32_t c) {
  return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x20000 && c <= 0x2a6df) ||
         (c >= 0x2a700 && c <= 0x2b73f) || (c >= 0x2b740 && c <= 0x2b81f) || (c >= 0x2b820 && c <= 0x2ceaf) ||
         (c >= 0xf900 && c <= 0xfaff) || (c >= 0x2f800 && c <= 0x2fa1f);
}

// BERT's notion of punctuation: all non-alphanumeric ASCII, and Unicode P*.
static bool is_bert_punct(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         is_punctuation(c);
}

std::vector<std::string> bert_pretokenize(std::string_view text, bool lowercase) {
  std::vector<std::string> words;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) words.push_back(std::move(cur));
    cur.clear();
  };
  auto alone = [&](char32_t c) {
    flush();
    append_utf8(cur, c);
    flush();
  };
  for (size_t i = 0; i < text.size();) {
    char32_t c = next_char(text, i);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || is_space_separator(c)) {
      flush();
      continue;
    }
    if (c == 0 || c == 0xfffd || is_other(c)) continue;  // dropped by the clean-up
    if (is_cjk(c)) {
      alone(c);
      continue;
    }
    std::u32string lowered = lowercase ? to_lower(c) : std::u32string(1, c);
    for (char32_t l : lowered)
      for (char32_t d : lowercase ? nfd(l) : std::u32string(1, l)) {
        if (lowercase && is_nonspacing_mark(d)) continue;  // accents go with the case
        if (is_bert_punct(d)) {
          alone(d);
        } else {
          append_utf8(cur, d);
        }
      }
  }
  flush();
  return words;
}

std::vector<int32_t> encode_wordpiece(const Tokenizer& tok, std::string_view text) {
  if (tok.unk < 0) bad_input("a WordPiece vocabulary needs an unknown token ([UNK])");
  constexpr size_t kMaxChars = 100;  // longer words are [UNK], as in BERT
  std::vector<int32_t> out;
  std::string piece;
  for (const std::string& w : bert_pretokenize(text, tok.lowercase)) {
    std::vector<size_t> at;  // character boundaries
    for (size_t i = 0; i < w.size(); next_char(w, i)) at.push_back(i);
    at.push_back(w.size());
    if (at.size() - 1 > kMaxChars) {
      out.push_back(tok.unk);
      continue;
    }
    std::vector<int32_t> ids;
    for (size_t s = 0; s + 1 < at.size();) {
      int32_t id = -1;
      size_t e = at.size() - 1;
      for (; e > s; e--) {
        piece.assign(s ? "##" : "").append(w, at[s], at[e] - at[s]);
        if ((id = tok.find(piece)) >= 0) break;
      }
      if (id < 0) {
        ids = {tok.unk};
        break;
      }
      ids.push_back(id);
      s = e;
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

}  // namespace tq
