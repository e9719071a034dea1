#include "io/imatrix.h"

#include <cmath>
#include <cstring>

#include "core/checked.h"
#include "core/error.h"
#include "core/mmap.h"
#include "io/ggml_types.h"
#include "io/gguf.h"

namespace tq {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

void check_counts(const std::string& file, const std::string& name, const ImatrixEntry& e) {
  if (e.counts.empty() || e.sum2.size() % e.counts.size())
    bad_input("{}: {}: {} sums for {} counts", file, name, e.sum2.size(), e.counts.size());
  for (float c : e.counts)
    if (!(c >= 0) || !std::isfinite(c)) bad_input("{}: {}: count {} is not a finite non-negative number", file, name, c);
  for (float s : e.sum2)
    if (!(s >= 0) || !std::isfinite(s)) bad_input("{}: {}: a sum of squares {} is not finite and non-negative", file, name, s);
}

Imatrix from_gguf(std::span<const uint8_t> bytes, const std::string& file) {
  GgufFile g = parse_gguf(bytes);
  Imatrix im;
  im.source = file;
  if (g.meta.contains("general.type") && g.get_str("general.type") != "imatrix")
    bad_input("{}: general.type is '{}', not an imatrix", file, g.get_str("general.type"));
  im.chunk_count = g.get_int("imatrix.chunk_count", 0);
  im.chunk_size = g.get_int("imatrix.chunk_size", 0);
  if (g.meta.contains("imatrix.datasets") && g.meta["imatrix.datasets"].is_array())
    for (auto& d : g.meta["imatrix.datasets"])
      if (d.is_string()) im.datasets.push_back(d.get<std::string>());
  const std::string s2 = ".in_sum2", cn = ".counts";
  for (const GgufTensorInfo& t : g.tensors) {
    if (!ends_with(t.name, s2)) {
      if (!ends_with(t.name, cn)) bad_input("{}: tensor {} is neither W.in_sum2 nor W.counts", file, t.name);
      continue;
    }
    const std::string w = t.name.substr(0, t.name.size() - s2.size());
    const GgufTensorInfo* c = g.find(w + cn);
    if (!c) bad_input("{}: {} has no {}", file, t.name, w + cn);
    if (t.type != ggml_f32 || c->type != ggml_f32) bad_input("{}: {}: the sums and counts must be F32", file, w);
    if (t.ne.empty() || t.ne.size() > 2 || c->numel() != (t.ne.size() == 2 ? t.ne[1] : 1))
      bad_input("{}: {}: {} counts for sums of {} dimensions", file, w, c->numel(), t.ne.size());
    ImatrixEntry e;
    Tensor sum = g.read(t), counts = g.read(*c);
    e.sum2 = sum.data;
    e.counts = counts.data;
    check_counts(file, w, e);
    im.entries[w] = std::move(e);
  }
  for (const GgufTensorInfo& t : g.tensors)
    if (ends_with(t.name, cn) && !im.entries.count(t.name.substr(0, t.name.size() - cn.size())))
      bad_input("{}: {} has no in_sum2", file, t.name);
  return im;
}

// The legacy binary form, every length checked against what is left.
Imatrix from_dat(std::span<const uint8_t> bytes, const std::string& file) {
  size_t at = 0;
  auto i32 = [&](const char* what) {
    if (bytes.size() - at < 4) bad_input("{}: truncated at byte {} (reading {})", file, at, what);
    int32_t v;
    std::memcpy(&v, bytes.data() + at, 4);
    at += 4;
    return v;
  };
  Imatrix im;
  im.source = file;
  const int32_t n = i32("the entry count");
  if (n < 0 || (size_t)n > bytes.size() / 12) bad_input("{}: {} entries in {} bytes", file, n, bytes.size());
  for (int32_t k = 0; k < n; k++) {
    const int32_t len = i32("a name length");
    if (len <= 0 || (size_t)len > bytes.size() - at) bad_input("{}: entry {}: name length {}", file, k, len);
    std::string name((const char*)bytes.data() + at, (size_t)len);
    at += (size_t)len;
    const int32_t ncall = i32("ncall"), nval = i32("nval");
    if (ncall < 0 || nval <= 0 || (size_t)nval > (bytes.size() - at) / 4)
      bad_input("{}: {}: ncall {}, {} values with {} bytes left", file, name, ncall, nval, bytes.size() - at);
    ImatrixEntry e;
    e.sum2.resize((size_t)nval);
    std::memcpy(e.sum2.data(), bytes.data() + at, (size_t)nval * 4);
    at += (size_t)nval * 4;
    e.counts = {(float)ncall};  // the values are the mean square times ncall
    check_counts(file, name, e);
    if (!im.entries.emplace(name, std::move(e)).second) bad_input("{}: {} appears twice", file, name);
  }
  if (at < bytes.size()) {  // the trailer: the last chunk and the dataset's name
    im.chunk_count = i32("the chunk count");
    const int32_t len = i32("the dataset name length");
    if (len < 0 || (size_t)len != bytes.size() - at) bad_input("{}: dataset name of {} bytes with {} left", file, len, bytes.size() - at);
    im.datasets.push_back(std::string((const char*)bytes.data() + at, (size_t)len));
  }
  return im;
}

}  // namespace

std::vector<float> Imatrix::mean_square(const std::string& name, int64_t cols) const {
  auto it = entries.find(name);
  if (it == entries.end()) bad_input("{}: no importance for tensor {}", source, name);
  const ImatrixEntry& e = it->second;
  if (e.counts.size() != 1 || (int64_t)e.sum2.size() != cols)
    bad_input("{}: {}: {} values in {} matrices, the weight has {} inputs", source, name, e.sum2.size(),
              e.counts.size(), cols);
  std::vector<float> out(e.sum2.size());
  const float c = e.counts[0] > 0 ? e.counts[0] : 1.0f;
  for (size_t j = 0; j < out.size(); j++) out[j] = e.sum2[j] / c;
  return out;
}

Imatrix parse_imatrix(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
    try {
      return from_gguf(bytes, name);
    } catch (const Error& e) {
      std::string msg = e.what();
      throw Error(e.exit_code, msg.rfind(name, 0) == 0 ? msg : name + ": " + msg);
    }
  }
  return from_dat(bytes, name);
}

Imatrix read_imatrix(const std::string& path) {
  MappedFile f(path);
  return parse_imatrix(f.bytes(), path);
}

}  // namespace tq
