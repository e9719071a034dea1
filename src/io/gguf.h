// GGUF v2/v3 reader. The parser checks every count, length, offset and size
// against the file before it reads; a malformed file throws Error(2) with a
// one-line message.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "core/tensor.h"

namespace tq {

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the fastest-varying dimension
  uint32_t type = 0;
  uint64_t offset = 0;      // relative to the data section
  uint64_t nbytes = 0;
  int64_t numel() const;
  std::vector<int64_t> shape() const;  // row-major order: reversed ne
};

struct GgufFile {
  uint32_t version = 0;
  uint64_t alignment = 32;
  nlohmann::json meta;  // metadata: numbers, strings, bools and (nested) arrays as JSON values
  std::vector<GgufTensorInfo> tensors;
  std::span<const uint8_t> data;  // the data section
  std::shared_ptr<MappedFile> file;

  const GgufTensorInfo* find(const std::string& name) const;
  // Reads a tensor as f32 (F32/F16/BF16/F64 and quantized types with a to_f32 row).
  Tensor read(const GgufTensorInfo& t) const;
  // The tensor with its values left in the file (Tensor::stored), for lazy loading.
  Tensor stored(const GgufTensorInfo& t) const;
  // Metadata helpers: throw bad_input naming the key when it is missing or mistyped.
  int64_t get_int(const std::string& key) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key, double fallback) const;
  std::string get_str(const std::string& key) const;
};

// Parses a GGUF file from bytes (the file object keeps the mapping alive).
GgufFile parse_gguf(std::span<const uint8_t> bytes, std::shared_ptr<MappedFile> keep = nullptr);
GgufFile read_gguf(const std::string& path);
bool is_gguf(const std::string& path);

}  // namespace tq
