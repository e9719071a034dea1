#include "io/safetensors.h"

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/json.h"
#include "io/ggml_types.h"
#include "io/atomic_file.h"

namespace tq {

int dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}

SafetensorsFile parse_safetensors(std::span<const uint8_t> b, std::shared_ptr<MappedFile> keep) {
  SafetensorsFile f;
  f.file = std::move(keep);
  if (b.size() < 8) bad_input("safetensors file is too short ({} bytes)", b.size());
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  if (n > b.size() - 8) bad_input("safetensors header length {} runs past the end of the {}-byte file", n, b.size());
  if (n > (100u << 20)) bad_input("safetensors header of {} bytes is implausibly large", n);
  nlohmann::json h = parse_json({(const char*)b.data() + 8, (size_t)n}, "safetensors header");
  if (!h.is_object()) bad_input("safetensors header is not a JSON object");
  auto data = b.subspan(8 + n);
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) bad_input("safetensors __metadata__ is not an object");
      f.metadata = v;
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v["dtype"].is_string() || !v.contains("shape") ||
        !v["shape"].is_array() || !v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      bad_input("safetensors entry '{}' lacks dtype, shape or data_offsets", name);
    SafeTensor t;
    t.name = name;
    t.dtype = v["dtype"].get<std::string>();
    int es = dtype_size(t.dtype);
    if (!es) bad_input("safetensors tensor '{}' has unsupported dtype {}", name, t.dtype);
    if (v["shape"].size() > 8) bad_input("safetensors tensor '{}' has rank {}", name, v["shape"].size());
    uint64_t numel = 1;
    for (auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad_input("safetensors tensor '{}' has a bad dimension", name);
      uint64_t x = d.get<uint64_t>();
      if (x > (1ull << 40) || (x && numel > (1ull << 48) / x)) bad_input("safetensors tensor '{}' is too large", name);
      numel *= x;
      t.shape.push_back((int64_t)x);
    }
    auto& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad_input("safetensors tensor '{}' has bad data_offsets", name);
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data.size())
      bad_input("safetensors tensor '{}' data [{}, {}) is outside the {}-byte data section", name, begin, end,
                data.size());
    if (end - begin != numel * es)
      bad_input("safetensors tensor '{}' has {} bytes but shape {} of {} needs {}", name, end - begin,
                shape_str(t.shape), t.dtype, numel * es);
    t.bytes = data.subspan(begin, end - begin);
    f.tensors.push_back(std::move(t));
  }
  std::vector<const SafeTensor*> order;  // tensors of no bytes occupy nothing and cannot overlap
  for (auto& t : f.tensors)
    if (!t.bytes.empty()) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->bytes.data() < b->bytes.data(); });
  for (size_t i = 1; i < order.size(); i++)
    if (order[i]->bytes.data() < order[i - 1]->bytes.data() + order[i - 1]->bytes.size())
      bad_input("safetensors tensors '{}' and '{}' overlap", order[i - 1]->name, order[i]->name);
  return f;
}

SafetensorsFile read_safetensors(const std::string& path) {
  auto m = std::make_shared<MappedFile>(path);
  try {
    return parse_safetensors(m->bytes(), m);
  } catch (const Error& e) {
    throw Error(e.exit_code, path + ": " + e.what());
  }
}

const SafeTensor* SafetensorsFile::find(const std::string& name) const {
  for (auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Tensor SafetensorsFile::stored(const SafeTensor& t) const {
  uint32_t type = t.dtype == "F32"    ? ggml_f32
                  : t.dtype == "F16"  ? ggml_f16
                  : t.dtype == "BF16" ? ggml_bf16
                  : t.dtype == "F64"  ? ggml_f64
                                      : UINT32_MAX;
  if (type == UINT32_MAX) bad_input("safetensors tensor '{}' has dtype {}, expected a float type", t.name, t.dtype);
  return stored_tensor(t.shape, ggml_type_info(type), t.bytes.data(), file);
}

Tensor SafetensorsFile::read_f32(const SafeTensor& t) const {
  Tensor out = stored(t);
  out.load_values();
  out.stored.reset();
  return out;
}

SafeTensorOut f32_tensor(const std::string& name, const Tensor& t) {
  SafeTensorOut o{name, "F32", t.shape, {}};
  o.bytes.resize(t.numel() * 4);
  std::memcpy(o.bytes.data(), t.ptr(), o.bytes.size());
  return o;
}

void write_safetensors(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const nlohmann::json& metadata) {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  auto nbytes = [](const SafeTensorOut& t) {
    return t.fill ? (uint64_t)Tensor::count(t.shape) * dtype_size(t.dtype) : (uint64_t)t.bytes.size();
  };
  uint64_t off = 0;
  for (auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + nbytes(t)}}};
    off += nbytes(t);
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8) hs += ' ';  // align the data section to 8 bytes
  uint64_t n = hs.size();
  AtomicFile f(path);
  f.write(&n, 8);
  f.write(hs);
  std::vector<uint8_t> made;
  for (auto& t : tensors) {
    if (!t.fill) {
      f.write(t.bytes.data(), t.bytes.size());
      continue;
    }
    made.assign(nbytes(t), 0);
    t.fill(made.data());
    f.write(made.data(), made.size());
  }
  f.commit();
}

}  // namespace tq
