#include "text/tokenizer.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>

#include <queue>

#include "core/checked.h"
#include "core/error.h"

namespace tq {

// The byte of a byte-fallback piece "<0xAB>" (exactly two hex digits), or -1.
static int byte_piece_value(const std::string& p) {
  if (p.size() != 6 || p.rfind("<0x", 0) != 0 || p[5] != '>' || !std::isxdigit((unsigned char)p[3]) ||
      !std::isxdigit((unsigned char)p[4]))
    return -1;
  return (int)parse_int(std::string_view(p).substr(3, 2), 0, 255, "byte piece", 16);
}

static int utf8_len(uint8_t c) {
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) return 2;
  if ((c & 0xf0) == 0xe0) return 3;
  if ((c & 0xf8) == 0xf0) return 4;
  return 1;  // stray continuation byte: its own symbol (byte fallback handles it)
}

void Tokenizer::finalize() {
  int n = (int)pieces.size();
  if (kind == TokKind::none) return;
  if (n == 0) bad_input("tokenizer has an empty vocabulary");
  if (!scores.empty() && (int)scores.size() != n) bad_input("tokenizer has {} pieces but {} scores", n, scores.size());
  if (!types.empty() && (int)types.size() != n) bad_input("tokenizer has {} pieces but {} types", n, types.size());
  for (int i = 0; i < (int)scores.size(); i++)  // the merge order compares scores: NaN has no place in it
    if (!std::isfinite(scores[i])) bad_input("tokenizer score {} of piece {} is not finite", scores[i], i);
  for (int id : {bos, eos, unk, pad, sep, cls, mask})
    if (id < -1 || id >= n) bad_input("tokenizer special token id {} is outside the vocabulary of {}", id, n);
  index.clear();
  index.reserve(n);
  for (int i = 0; i < n; i++) index.emplace(pieces[i], i);  // first occurrence wins
  for (int b = 0; b < 256; b++) byte_id[b] = -1;
  if (kind == TokKind::spm) {
    for (int i = 0; i < n; i++) {
      const int v = byte_piece_value(pieces[i]);
      if (v >= 0 && byte_id[v] < 0) byte_id[v] = i;
    }
  }
  merge_rank.clear();
  for (int i = 0; i < (int)merges.size(); i++) merge_rank.emplace(merges[i], i);
}

// SentencePiece BPE: start from UTF-8 characters, repeatedly merge the adjacent
// pair whose concatenation is the highest-scoring piece (leftmost on ties),
// then map symbols to ids with byte fallback. A priority queue keeps it
// O(n log n) so that whole files can be tokenized at once.
static std::vector<int32_t> encode_spm(const Tokenizer& tok, std::string_view raw) {
  std::string text;
  if (tok.add_space_prefix && !raw.empty()) text = " ";
  text.append(raw);
  struct Sym {
    int start, len, prev, next;
  };
  std::vector<Sym> sym;
  for (int i = 0; i < (int)text.size();) {
    int l = std::min<int>(utf8_len((uint8_t)text[i]), (int)text.size() - i);
    sym.push_back({i, l, (int)sym.size() - 1, (int)sym.size() + 1});
    i += l;
  }
  if (!sym.empty()) sym.back().next = -1;
  struct Pair {
    float score;
    int left, right, len;
    bool operator<(const Pair& o) const {  // max-heap: higher score, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Pair> q;
  auto try_pair = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    std::string_view s(text.data() + sym[l].start, sym[l].len + sym[r].len);
    int32_t id = tok.find(s);
    if (id < 0) return;
    q.push({tok.scores.empty() ? 0.0f : tok.scores[id], l, r, (int)s.size()});
  };
  for (int i = 0; i + 1 < (int)sym.size(); i++) try_pair(i, i + 1);
  while (!q.empty()) {
    Pair p = q.top();
    q.pop();
    Sym &l = sym[p.left], &r = sym[p.right];
    if (l.len == 0 || r.len == 0 || l.next != p.right || l.len + r.len != p.len) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = p.left;
    try_pair(l.prev, p.left);
    try_pair(p.left, l.next);
  }
  std::vector<int32_t> out;
  for (int i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) {
    std::string_view s(text.data() + sym[i].start, sym[i].len);
    int32_t id = tok.find(s);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (uint8_t c : s) {
      int32_t b = tok.byte_id[c];
      if (b < 0 && tok.unk < 0) bad_input("cannot tokenize byte 0x{:02x}: no byte fallback and no unknown token", c);
      out.push_back(b >= 0 ? b : tok.unk);
    }
  }
  return out;
}

std::vector<int32_t> encode_bpe(const Tokenizer& tok, std::string_view text);        // tokenizer_bpe.cpp
std::vector<int32_t> encode_wordpiece(const Tokenizer& tok, std::string_view text);  // tokenizer_wordpiece.cpp

std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text, bool bos) {
  std::vector<int32_t> out;
  int first = tok.kind == TokKind::wordpiece ? tok.cls : tok.bos;
  if (bos && first >= 0) out.push_back(first);
  std::vector<int32_t> body;
  switch (tok.kind) {
    case TokKind::spm: body = encode_spm(tok, text); break;
    case TokKind::bpe: body = encode_bpe(tok, text); break;
    case TokKind::wordpiece: body = encode_wordpiece(tok, text); break;
    case TokKind::none: bad_input("this model has no tokenizer");
  }
  out.insert(out.end(), body.begin(), body.end());
  if (bos && tok.kind == TokKind::wordpiece && tok.sep >= 0) out.push_back(tok.sep);
  return out;
}

std::string decode_token(const Tokenizer& tok, int32_t prev, int32_t id) {
  if (id < 0 || id >= tok.size()) return "";
  int32_t type = tok.types.empty() ? tok_normal : tok.types[id];
  if (type == tok_control || type == tok_unused || id == tok.bos || id == tok.eos) return "";
  const std::string& p = tok.pieces[id];
  if (tok.kind == TokKind::spm) {
    const int v = byte_piece_value(p);
    if (v >= 0) return std::string(1, (char)v);
    if (prev == tok.bos && !p.empty() && p[0] == ' ') return p.substr(1);
    return p;
  }
  if (tok.kind == TokKind::bpe) {
    std::string decode_bpe_piece(const std::string&);  // tokenizer_bpe.cpp
    return decode_bpe_piece(p);
  }
  if (tok.kind == TokKind::wordpiece) return p.rfind("##", 0) == 0 ? p.substr(2) : " " + p;
  return p;
}

std::string decode(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); i++) s += decode_token(tok, i ? ids[i - 1] : -1, ids[i]);
  return s;
}

std::string spm_unescape(std::string_view piece) {
  std::string out;
  for (size_t i = 0; i < piece.size(); i++) {
    if (piece.compare(i, 3, "\xe2\x96\x81") == 0) {
      out += ' ';
      i += 2;
    } else {
      out += piece[i];
    }
  }
  return out;
}

}  // namespace tq
