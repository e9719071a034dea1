#include "text/dataset.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/checked.h"
#include "core/error.h"
#include "core/mmap.h"
#include "core/parallel.h"

namespace tq {

DataSpec parse_data_spec(const std::string& full) {
  DataSpec d;
  std::string spec = full, query;
  if (auto q = full.rfind('?'); q != std::string::npos) {
    spec = full.substr(0, q);
    query = full.substr(q + 1);
  }
  auto colon = spec.find(':');
  std::string prefix = colon == std::string::npos ? "" : spec.substr(0, colon);
  if (prefix == "mnist" || prefix == "sst2" || prefix == "text") {
    d.kind = prefix;
    d.path = spec.substr(colon + 1);
  } else {
    d.path = spec;
  }
  if (d.path.empty()) bad_input("data spec '{}' names no file", full);
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    std::string kv = query.substr(start, amp - start);
    start = amp + 1;
    size_t eq = kv.find('=');
    if (eq == std::string::npos) bad_input("data spec '{}': '{}' is not key=value", full, kv);
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    const std::string what = fmt::format("data spec '{}': {}", full, k);
    if (k == "from") d.from = parse_number(v, 0, 1, what);
    else if (k == "to") d.to = parse_number(v, 0, 1, what);
    else if (k == "offset") d.offset = parse_int(v, 0, kMaxSequences, what);
    else if (k == "limit") d.limit = parse_int(v, 0, kMaxSequences, what);
    else if (k == "ctx") d.ctx = (int)parse_int(v, 2, kMaxContext, what);
    else if (k == "protocol") d.protocol = v;
    else bad_input("data spec '{}': unknown key '{}' (from, to, offset, limit, ctx, protocol)", full, k);
  }
  if (!(d.from >= 0 && d.from <= d.to && d.to <= 1)) bad_input("data spec '{}': need 0 <= from <= to <= 1", full);
  return d;
}

std::pair<int64_t, int64_t> slice_range(int64_t n, const DataSpec& d) {
  if (!(d.from >= 0 && d.from <= d.to && d.to <= 1)) bad_input("need 0 <= from <= to <= 1, got {} and {}", d.from, d.to);
  int64_t b = (int64_t)(d.from * n), e = (int64_t)(d.to * n);
  if (d.offset < 0 || d.limit < 0) bad_input("offset and limit must not be negative");
  if (d.offset > e - b) bad_input("offset {} is beyond the {} sequences selected", d.offset, e - b);
  b += d.offset;
  if (d.limit > 0) e = b + std::min(e - b, d.limit);  // no b + limit: a limit near 2^63 must not overflow
  return {b, e};
}

std::vector<std::string> read_lines(const std::string& path) {
  std::string text = read_text_file(path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t\r\f\v") != std::string::npos) lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}


template <class T>
static std::vector<T> slice(std::vector<T> v, const DataSpec& d) {
  auto [b, e] = slice_range((int64_t)v.size(), d);
  return std::vector<T>(std::make_move_iterator(v.begin() + b), std::make_move_iterator(v.begin() + e));
}

static std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> f;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) return f;
    start = tab + 1;
  }
}

std::vector<TextExample> read_sst2(const std::string& path, const DataSpec& slice_spec) {
  std::vector<std::string> lines = read_lines(path);
  if (lines.empty()) bad_input("{}: empty file", path);
  std::vector<std::string> head = split_tabs(lines[0]);
  auto col = [&](const char* name) {
    auto it = std::find(head.begin(), head.end(), name);
    if (it == head.end()) bad_input("{}: the header has no '{}' column", path, name);
    return it - head.begin();
  };
  auto text_col = col("sentence"), label_col = col("label");
  lines.erase(lines.begin());
  if (lines.empty()) bad_input("{}: only a header, no sentences", path);
  std::vector<TextExample> out;
  for (size_t i = 0; i < lines.size(); i++) {
    std::vector<std::string> f = split_tabs(lines[i]);
    if (f.size() != head.size())
      bad_input("{}: row {} has {} fields, the header {}", path, i + 1, f.size(), head.size());
    out.push_back({f[text_col], (int32_t)parse_int(f[label_col], 0, 1 << 24, fmt::format("{}: row {} label", path, i + 1))});
  }
  return slice(std::move(out), slice_spec);
}

std::vector<TextSeq> text_sequences(const Tokenizer& tok, const DataSpec& spec) {
  TQ_CHECK_INPUT(spec.kind == "text", "data '{}' is not text", spec.path);
  TQ_CHECK_INPUT(spec.ctx >= 2 && spec.ctx <= kMaxContext, "--ctx must be in [2, {}], got {}", kMaxContext, spec.ctx);
  TQ_CHECK_INPUT(!tok.empty(), "the model has no tokenizer to encode {}", spec.path);
  std::vector<TextSeq> out;
  if (spec.protocol == "lines") {
    std::vector<std::string> lines = slice(read_lines(spec.path), spec);
    out.resize(lines.size());
    parallel_for(
        (int64_t)lines.size(),
        [&](int64_t i) {
          out[i].tokens = encode(tok, lines[i], true);
          if ((int)out[i].tokens.size() > spec.ctx) out[i].tokens.resize(spec.ctx);
        },
        16);
    std::erase_if(out, [](const TextSeq& s) { return s.tokens.size() < 2; });
  } else if (spec.protocol == "chunks") {
    std::vector<int32_t> all = encode(tok, read_text_file(spec.path), true);
    int64_t n = (int64_t)all.size() / spec.ctx;
    for (int64_t w = 0; w < n; w++) {
      TextSeq s;
      s.tokens.assign(all.begin() + w * spec.ctx, all.begin() + (w + 1) * spec.ctx);
      if (tok.bos >= 0) s.tokens[0] = tok.bos;
      s.score_from = spec.ctx / 2;
      out.push_back(std::move(s));
    }
    out = slice(std::move(out), spec);
  } else {
    bad_input("unknown protocol '{}' (lines or chunks)", spec.protocol);
  }
  if (out.empty()) bad_input("{} gives no sequences to score", spec.path);
  return out;
}

}  // namespace tq
