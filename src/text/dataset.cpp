#include "text/dataset.h"

#include <algorithm>

#include "core/error.h"
#include "core/mmap.h"

namespace tq {

DataSpec parse_data_spec(const std::string& spec) {
  DataSpec d;
  auto colon = spec.find(':');
  std::string prefix = colon == std::string::npos ? "" : spec.substr(0, colon);
  if (prefix == "mnist" || prefix == "sst2" || prefix == "text") {
    d.kind = prefix;
    d.path = spec.substr(colon + 1);
  } else {
    d.path = spec;
  }
  if (d.path.empty()) bad_input("data spec '{}' names no file", spec);
  return d;
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

std::pair<int64_t, int64_t> slice_range(int64_t n, int64_t offset, int64_t limit) {
  if (offset < 0 || offset > n) bad_input("--offset {} is beyond the {} sequences", offset, n);
  int64_t avail = n - offset;
  return {offset, limit > 0 && limit < avail ? limit : avail};
}

template <class T>
static std::vector<T> slice(std::vector<T> v, int64_t offset, int64_t limit) {
  auto [first, count] = slice_range((int64_t)v.size(), offset, limit);
  auto b = v.begin() + first;
  return std::vector<T>(std::make_move_iterator(b), std::make_move_iterator(b + count));
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

std::vector<TextExample> read_sst2(const std::string& path, int64_t offset, int64_t limit) {
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
  std::vector<TextExample> out;
  for (size_t i = 0; i < lines.size(); i++) {
    std::vector<std::string> f = split_tabs(lines[i]);
    if (f.size() != head.size())
      bad_input("{}: row {} has {} fields, the header {}", path, i + 1, f.size(), head.size());
    const std::string& l = f[label_col];
    if (l.empty() || l.size() > 6 || l.find_first_not_of("0123456789") != std::string::npos)
      bad_input("{}: row {} has label '{}', expected a class number", path, i + 1, l);
    out.push_back({f[text_col], std::stoi(l)});
  }
  return slice(std::move(out), offset, limit);
}

std::vector<TextSeq> text_sequences(const Tokenizer& tok, const DataSpec& spec) {
  TQ_CHECK_INPUT(spec.kind == "text", "data '{}' is not text", spec.path);
  TQ_CHECK_INPUT(spec.ctx >= 2 && spec.ctx <= (1 << 20), "--ctx must be at least 2, got {}", spec.ctx);
  TQ_CHECK_INPUT(!tok.empty(), "the model has no tokenizer to encode {}", spec.path);
  std::vector<TextSeq> out;
  if (spec.protocol == "lines") {
    std::vector<std::string> lines = slice(read_lines(spec.path), spec.offset, spec.limit);
    out.resize(lines.size());
#pragma omp parallel for schedule(dynamic, 16)
    for (size_t i = 0; i < lines.size(); i++) {
      out[i].tokens = encode(tok, lines[i], true);
      if ((int)out[i].tokens.size() > spec.ctx) out[i].tokens.resize(spec.ctx);
    }
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
    out = slice(std::move(out), spec.offset, spec.limit);
  } else {
    bad_input("unknown protocol '{}' (lines or chunks)", spec.protocol);
  }
  if (out.empty()) bad_input("{} gives no sequences to score", spec.path);
  return out;
}

}  // namespace tq
