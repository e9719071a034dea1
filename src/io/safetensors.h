// safetensors: 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw data. The reader checks
// every range against the file; the writer is atomic.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/tensor.h"

namespace tq {

struct SafeTensor {
  std::string name, dtype;  // dtype: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
  int64_t numel() const { return Tensor::count(shape); }
};

struct SafetensorsFile {
  std::vector<SafeTensor> tensors;
  nlohmann::json metadata = nlohmann::json::object();  // "__metadata__" (string → string)
  std::shared_ptr<MappedFile> file;

  const SafeTensor* find(const std::string& name) const;
  Tensor read_f32(const SafeTensor& t) const;  // float dtypes converted to f32
  Tensor stored(const SafeTensor& t) const;    // float dtypes left in the file (lazy loading)
};

SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, std::shared_ptr<MappedFile> keep = nullptr);
SafetensorsFile read_safetensors(const std::string& path);

// One tensor to write: raw little-endian bytes of the given dtype, or, when `fill`
// is set, made while the file is written (one tensor in memory at a time).
struct SafeTensorOut {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  std::function<void(uint8_t* dst)> fill;
};
SafeTensorOut f32_tensor(const std::string& name, const Tensor& t);
void write_safetensors(const std::string& path, const std::vector<SafeTensorOut>& tensors,
                       const nlohmann::json& metadata = nlohmann::json::object());

int dtype_size(const std::string& dtype);  // 0 for unknown

}  // namespace tq
