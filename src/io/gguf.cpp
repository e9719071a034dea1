#include "io/gguf.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "io/ggml_types.h"
#include "io/utf8.h"

namespace tq {

namespace {

enum : uint32_t { t_u8, t_i8, t_u16, t_i16, t_u32, t_i32, t_f32, t_bool, t_string, t_array, t_u64, t_i64, t_f64 };

struct Reader {
  std::span<const uint8_t> b;
  size_t pos = 0;

  size_t left() const { return b.size() - pos; }
  void need(size_t n, const char* what) {
    if (n > left()) bad_input("GGUF is truncated: {} needs {} bytes at offset {}, {} left", what, n, pos, left());
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    uint64_t n = get<uint64_t>(what);
    need(n, what);
    std::string s((const char*)b.data() + pos, n);
    pos += n;
    return s;
  }
};

nlohmann::json read_value(Reader& r, uint32_t type, int depth) {
  switch (type) {
    case t_u8: return r.get<uint8_t>("a u8 value");
    case t_i8: return r.get<int8_t>("an i8 value");
    case t_u16: return r.get<uint16_t>("a u16 value");
    case t_i16: return r.get<int16_t>("an i16 value");
    case t_u32: return r.get<uint32_t>("a u32 value");
    case t_i32: return r.get<int32_t>("an i32 value");
    case t_f32: return r.get<float>("an f32 value");
    case t_bool: {
      uint8_t v = r.get<uint8_t>("a bool value");
      if (v > 1) bad_input("GGUF bool value {} at offset {} is neither 0 nor 1", v, r.pos - 1);
      return v == 1;
    }
    case t_string: return r.str("a string value");
    case t_u64: return r.get<uint64_t>("a u64 value");
    case t_i64: return r.get<int64_t>("an i64 value");
    case t_f64: return r.get<double>("an f64 value");
    case t_array: {
      if (depth > 4) bad_input("GGUF arrays are nested too deeply at offset {}", r.pos);
      uint32_t et = r.get<uint32_t>("an array type");
      uint64_t n = r.get<uint64_t>("an array length");
      static const size_t min_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};
      if (et > t_f64) bad_input("GGUF array has unknown element type {} at offset {}", et, r.pos - 12);
      if (n > (1u << 24)) bad_input("GGUF array of {} elements at offset {} is implausibly long", n, r.pos);
      if (n > r.left() / min_size[et])
        bad_input("GGUF array of {} elements at offset {} does not fit in the {} bytes left", n, r.pos, r.left());
      nlohmann::json arr = nlohmann::json::array();
      arr.get_ref<nlohmann::json::array_t&>().reserve(n);
      for (uint64_t i = 0; i < n; i++) arr.push_back(read_value(r, et, depth + 1));
      return arr;
    }
  }
  bad_input("GGUF value has unknown type {} at offset {}", type, r.pos - 4);
}

}  // namespace

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

GgufFile parse_gguf(std::span<const uint8_t> bytes, std::shared_ptr<MappedFile> keep) {
  GgufFile g;
  g.file = std::move(keep);
  Reader r{bytes};
  uint32_t magic = r.get<uint32_t>("the magic");
  if (magic != 0x46554747) bad_input("not a GGUF file (magic {:08x}, expected 46554747 'GGUF')", magic);
  g.version = r.get<uint32_t>("the version");
  if (g.version != 2 && g.version != 3) bad_input("GGUF version {} is not supported (2 and 3 are)", g.version);
  uint64_t n_tensors = r.get<uint64_t>("the tensor count");
  uint64_t n_kv = r.get<uint64_t>("the metadata count");
  // Every entry takes at least 12 (metadata) or 24 (tensor info) bytes: reject absurd counts early.
  if (n_kv > r.left() / 12) bad_input("GGUF claims {} metadata entries, more than the file can hold", n_kv);
  if (n_tensors > r.left() / 24) bad_input("GGUF claims {} tensors, more than the file can hold", n_tensors);
  g.meta = nlohmann::json::object();
  for (uint64_t i = 0; i < n_kv; i++) {
    std::string key = r.str("a metadata key");
    if (!valid_utf8(key)) bad_input("GGUF metadata key {} is not valid UTF-8", i);
    if (g.meta.contains(key)) bad_input("GGUF metadata key '{}' appears twice", key);
    uint32_t type = r.get<uint32_t>("a metadata type");
    g.meta[key] = read_value(r, type, 0);
  }
  if (g.meta.contains("general.alignment")) {
    const auto& a = g.meta["general.alignment"];
    if (!a.is_number_unsigned() || a.get<uint64_t>() == 0 || a.get<uint64_t>() > (1u << 20) ||
        (a.get<uint64_t>() & (a.get<uint64_t>() - 1)))
      bad_input("GGUF general.alignment must be a power of two up to 1 MiB");
    g.alignment = a.get<uint64_t>();
  }
  g.tensors.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; i++) {
    GgufTensorInfo t;
    t.name = r.str("a tensor name");
    if (!valid_utf8(t.name)) bad_input("GGUF tensor name {} is not valid UTF-8", i);
    uint32_t nd = r.get<uint32_t>("a tensor rank");
    if (nd < 1 || nd > 4) bad_input("GGUF tensor '{}' has rank {} (1 to 4 allowed)", t.name, nd);
    int64_t numel = 1;
    for (uint32_t d = 0; d < nd; d++) {
      uint64_t v = r.get<uint64_t>("a tensor dimension");
      if (v == 0 || v > (1ull << 40)) bad_input("GGUF tensor '{}' has dimension {}", t.name, v);
      if ((uint64_t)numel > (1ull << 48) / v) bad_input("GGUF tensor '{}' has too many elements", t.name);
      numel *= (int64_t)v;
      t.ne.push_back((int64_t)v);
    }
    t.type = r.get<uint32_t>("a tensor type");
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    if (!ti) bad_input("GGUF tensor '{}' has unknown type {}", t.name, t.type);
    if (t.ne[0] % ti->block) bad_input("GGUF tensor '{}': {} rows are not whole {} blocks", t.name, t.ne[0], ti->name);
    t.nbytes = (uint64_t)(numel / ti->block) * ti->bytes;
    t.offset = r.get<uint64_t>("a tensor offset");
    if (t.offset % g.alignment) bad_input("GGUF tensor '{}' offset {} is not aligned", t.name, t.offset);
    g.tensors.push_back(std::move(t));
  }
  size_t data_start = (r.pos + g.alignment - 1) / g.alignment * g.alignment;
  if (data_start > bytes.size()) data_start = bytes.size();
  g.data = bytes.subspan(data_start);
  std::vector<const GgufTensorInfo*> order;
  for (auto& t : g.tensors) {
    if (t.offset > g.data.size() || t.nbytes > g.data.size() - t.offset)
      bad_input("GGUF tensor '{}' ({} bytes at {}) runs past the end of the file", t.name, t.nbytes, t.offset);
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); i++)
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes)
      bad_input("GGUF tensors '{}' and '{}' overlap", order[i - 1]->name, order[i]->name);
  for (size_t i = 0; i < g.tensors.size(); i++)
    for (size_t j = 0; j < i; j++)
      if (g.tensors[i].name == g.tensors[j].name) bad_input("GGUF tensor name '{}' appears twice", g.tensors[i].name);
  return g;
}

GgufFile read_gguf(const std::string& path) {
  auto f = std::make_shared<MappedFile>(path);
  try {
    return parse_gguf(f->bytes(), f);
  } catch (const Error& e) {
    throw Error(e.exit_code, path + ": " + e.what());
  }
}

bool is_gguf(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char m[4] = {};
  size_t n = std::fread(m, 1, 4, f);
  std::fclose(f);
  return n == 4 && std::memcmp(m, "GGUF", 4) == 0;
}

const GgufTensorInfo* GgufFile::find(const std::string& name) const {
  for (auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Tensor GgufFile::stored(const GgufTensorInfo& t) const {
  const GgmlTypeInfo* ti = ggml_type_info(t.type);
  if (!ti || !ti->to_f32) bad_input("GGUF tensor '{}' has type {} which tquant cannot read", t.name, ti ? ti->name : "?");
  return stored_tensor(t.shape(), ti, data.data() + t.offset, file);
}

Tensor GgufFile::read(const GgufTensorInfo& t) const {
  Tensor out = stored(t);
  out.load_values();
  out.stored.reset();
  return out;
}

int64_t GgufFile::get_int(const std::string& key) const {
  auto it = meta.find(key);
  if (it == meta.end()) bad_input("GGUF metadata '{}' is missing", key);
  if (!it->is_number_integer()) bad_input("GGUF metadata '{}' is not an integer", key);
  return it->get<int64_t>();
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const {
  return meta.contains(key) ? get_int(key) : fallback;
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  auto it = meta.find(key);
  if (it == meta.end()) return fallback;
  if (!it->is_number()) bad_input("GGUF metadata '{}' is not a number", key);
  return it->get<double>();
}

std::string GgufFile::get_str(const std::string& key) const {
  auto it = meta.find(key);
  if (it == meta.end()) bad_input("GGUF metadata '{}' is missing", key);
  if (!it->is_string()) bad_input("GGUF metadata '{}' is not a string", key);
  return it->get<std::string>();
}

}  // namespace tq
