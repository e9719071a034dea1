// Byte-level BPE (GPT-2, OPT): the text is split by GPT-2's pre-tokenization
// pattern, each piece's bytes are written as printable characters (the
// byte↔unicode table of GPT-2's encoder.py), and merges are applied by rank.
#include "core/error.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace tq {

namespace {

// Bytes that are printable Latin-1 stand for themselves; the rest take the
// code points from U+0100 on, in byte order.
struct ByteMap {
  std::string to_text[256];
  int16_t to_byte[0x144];
  ByteMap() {
    std::fill(std::begin(to_byte), std::end(to_byte), (int16_t)-1);
    int next = 256;
    for (int b = 0; b < 256; b++) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      char32_t c = printable ? b : next++;
      append_utf8(to_text[b], c);
      to_byte[c] = (int16_t)b;
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

enum CharClass : uint8_t { letter, number, space, other };

}  // namespace

// GPT-2's pattern, matched by hand (alternatives in order, at each position):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Returns the byte ranges of the pieces.
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(std::string_view text) {
  std::vector<size_t> start;
  std::vector<char32_t> ch;
  std::vector<CharClass> cls;
  for (size_t i = 0; i < text.size();) {
    start.push_back(i);
    char32_t c = next_char(text, i);
    ch.push_back(c);
    cls.push_back(is_letter(c) ? letter : is_number(c) ? number : is_white_space(c) ? space : other);
  }
  const size_t n = ch.size();
  start.push_back(text.size());
  std::vector<std::pair<size_t, size_t>> out;
  auto emit = [&](size_t a, size_t b) { out.push_back({start[a], start[b]}); };
  for (size_t i = 0; i < n;) {
    if (ch[i] == '\'' && i + 1 < n) {
      char32_t a = ch[i + 1], b = i + 2 < n ? ch[i + 2] : 0;
      size_t len = (a == 's' || a == 't' || a == 'm' || a == 'd')                       ? 2
                   : ((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l') ? 3
                                                                                        : 0;
      if (len) {
        emit(i, i + len);
        i += len;
        continue;
      }
    }
    size_t s = ch[i] == ' ' && i + 1 < n ? i + 1 : i;  // the optional leading space
    if (cls[s] != space) {
      size_t e = s;
      while (e < n && cls[e] == cls[s]) e++;
      emit(i, e);
      i = e;
      continue;
    }
    size_t e = i;
    while (e < n && cls[e] == space) e++;
    if (e < n && e - i >= 2) e--;  // leave the last space to lead the next piece
    emit(i, e);
    i = e;
  }
  return out;
}

// Merges the adjacent pair of lowest rank (all its occurrences, left to right) until none is known.
static void apply_merges(const Tokenizer& tok, std::vector<std::string>& sym) {
  std::string key;
  while (sym.size() > 1) {
    int32_t best = INT32_MAX;
    for (size_t i = 0; i + 1 < sym.size(); i++) {
      key.assign(sym[i]).append(" ").append(sym[i + 1]);
      auto it = tok.merge_rank.find(key);
      if (it != tok.merge_rank.end() && it->second < best) best = it->second;
    }
    if (best == INT32_MAX) return;
    std::vector<std::string> next;
    for (size_t i = 0; i < sym.size(); i++) {
      if (i + 1 < sym.size()) {
        key.assign(sym[i]).append(" ").append(sym[i + 1]);
        auto it = tok.merge_rank.find(key);
        if (it != tok.merge_rank.end() && it->second == best) {
          next.push_back(sym[i] + sym[i + 1]);
          i++;
          continue;
        }
      }
      next.push_back(std::move(sym[i]));
    }
    sym = std::move(next);
  }
}

std::vector<int32_t> encode_bpe(const Tokenizer& tok, std::string_view raw) {
  const ByteMap& bm = byte_map();
  std::string text(tok.add_space_prefix && !raw.empty() && raw[0] != ' ' ? " " : "");  // ByteLevel add_prefix_space
  text.append(raw);
  std::vector<int32_t> out;
  std::vector<std::string> sym;
  for (auto [a, b] : gpt2_pretokenize(text)) {
    sym.clear();
    for (size_t i = a; i < b; i++) sym.push_back(bm.to_text[(uint8_t)text[i]]);
    apply_merges(tok, sym);
    for (auto& s : sym) {
      int32_t id = tok.find(s);
      if (id < 0 && tok.unk < 0) bad_input("cannot tokenize '{}': not in the vocabulary and no unknown token", s);
      out.push_back(id >= 0 ? id : tok.unk);
    }
  }
  return out;
}

std::string decode_bpe_piece(const std::string& p) {
  const ByteMap& bm = byte_map();
  std::string out;
  for (size_t i = 0; i < p.size();) {
    size_t at = i;
    char32_t c = next_char(p, i);
    if (c < 0x144 && bm.to_byte[c] >= 0) {
      out += (char)bm.to_byte[c];
    } else {
      out.append(p, at, i - at);  // not a byte character: the piece's own text
    }
  }
  return out;
}

}  // namespace tq
