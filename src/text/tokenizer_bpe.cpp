// Byte-level BPE (GPT-2, OPT, Llama-3, Qwen2): the text is split by the
// family's pre-tokenization pattern, each piece's bytes are written as printable
// characters (the byte↔unicode table of GPT-2's encoder.py), and merges are
// applied by rank.
#include "core/error.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

#include <cctype>

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

// The characters of text with their byte offsets (one past the last: text.size()) and classes.
struct Chars {
  std::vector<size_t> start;
  std::vector<char32_t> ch;
  std::vector<CharClass> cls;
  size_t size() const { return ch.size(); }
};
Chars chars_of(std::string_view text) {
  Chars c;
  for (size_t i = 0; i < text.size();) {
    c.start.push_back(i);
    char32_t x = next_char(text, i);
    c.ch.push_back(x);
    c.cls.push_back(is_letter(x) ? letter : is_number(x) ? number : is_white_space(x) ? space : other);
  }
  c.start.push_back(text.size());
  return c;
}

}  // namespace

// GPT-2's pattern, matched by hand (alternatives in order, at each position):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Returns the byte ranges of the pieces.
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(std::string_view text) {
  const Chars c = chars_of(text);
  const auto& ch = c.ch;
  const auto& cls = c.cls;
  const auto& start = c.start;
  const size_t n = c.size();
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

// The Llama-3 pattern (Qwen2's is the same with \p{N} in place of \p{N}{1,3}), matched by hand:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
//   |\s*[\r\n]+|\s+(?!\S)|\s+
std::vector<std::pair<size_t, size_t>> llama3_pretokenize(std::string_view text, int max_digits) {
  const Chars c = chars_of(text);
  const size_t n = c.size();
  auto newline = [&](size_t k) { return c.ch[k] == '\r' || c.ch[k] == '\n'; };
  auto lower = [&](size_t k) { return c.ch[k] < 0x80 ? (char32_t)std::tolower((int)c.ch[k]) : c.ch[k]; };
  std::vector<std::pair<size_t, size_t>> out;
  auto emit = [&](size_t a, size_t b) { out.push_back({c.start[a], c.start[b]}); };
  for (size_t i = 0; i < n;) {
    size_t e = i;
    if (c.ch[i] == '\'' && i + 1 < n) {  // contractions, either case
      char32_t a = lower(i + 1), b = i + 2 < n ? lower(i + 2) : 0;
      e = (a == 's' || a == 't' || a == 'm' || a == 'd')                       ? i + 2
          : ((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l') ? i + 3
                                                                               : i;
    }
    if (e == i) {  // letters, led by at most one character that is not a newline, letter or number
      size_t s = c.cls[i] == letter ? i : i + 1 < n && c.cls[i] != number && !newline(i) ? i + 1 : n;
      if (s < n && c.cls[s] == letter) {
        e = s;
        while (e < n && c.cls[e] == letter) e++;
      }
    }
    if (e == i && c.cls[i] == number) {  // a run of numbers, cut every max_digits
      while (e < n && c.cls[e] == number && e - i < (size_t)max_digits) e++;
    }
    if (e == i) {  // other characters, led by at most one ' ', then any newlines
      size_t s = c.ch[i] == ' ' && i + 1 < n ? i + 1 : i;
      if (c.cls[s] == other) {
        e = s;
        while (e < n && c.cls[e] == other) e++;
        while (e < n && newline(e)) e++;
      }
    }
    if (e == i) {  // white space: through its last newline; else all of it, less the one before a non-space
      size_t run = i;
      while (run < n && c.cls[run] == space) run++;
      for (size_t k = i; k < run; k++)
        if (newline(k)) e = k + 1;
      if (e == i) e = run < n && run - i >= 2 ? run - 1 : run;
    }
    emit(i, e);
    i = e;
  }
  return out;
}

// The Split patterns of Llama-3 and Qwen2, as their tokenizer.json files write them.
static const char* const kLlama3Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char* const kQwen2Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char* bpe_split_regex(BpeSplit split) {
  return split == BpeSplit::llama3 ? kLlama3Split : split == BpeSplit::qwen2 ? kQwen2Split : "";
}

const char* bpe_split_name(BpeSplit split) {
  return split == BpeSplit::llama3 ? "llama-bpe" : split == BpeSplit::qwen2 ? "qwen2" : "gpt-2";
}

BpeSplit bpe_split_named(const std::string& name) {
  if (name == "gpt-2" || name == "gpt2" || name == "default") return BpeSplit::gpt2;
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") return BpeSplit::llama3;
  if (name == "qwen2") return BpeSplit::qwen2;
  bad_input("byte-level BPE split '{}' is not supported (gpt-2, llama-bpe, qwen2 are)", name);
}

std::vector<std::pair<size_t, size_t>> bpe_pretokenize(BpeSplit split, std::string_view text) {
  switch (split) {
    case BpeSplit::gpt2: return gpt2_pretokenize(text);
    case BpeSplit::llama3: return llama3_pretokenize(text, 3);
    case BpeSplit::qwen2: return llama3_pretokenize(text, 1);
  }
  return {};
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
  if (tok.nfc) text += nfc(raw);
  else text.append(raw);
  std::vector<int32_t> out;
  std::vector<std::string> sym;
  std::string whole;
  for (auto [a, b] : bpe_pretokenize(tok.split, text)) {
    if (tok.ignore_merges) {  // the whole piece, when the vocabulary has it
      whole.clear();
      for (size_t i = a; i < b; i++) whole += bm.to_text[(uint8_t)text[i]];
      if (int32_t id = tok.find(whole); id >= 0) {
        out.push_back(id);
        continue;
      }
    }
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
