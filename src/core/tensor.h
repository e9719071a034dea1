// The one tensor type: a shape, and its values as a contiguous row-major f32
// buffer — or, for a weight loaded lazily, the values as its file stores them
// (F16, BF16, F32 or a ggml block type, mapped, not copied), converted to f32
// only while the block that owns the tensor is worked on (load_values) and
// dropped again after (drop_values). Activations are always f32.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace tq {

// A tensor's values as its file holds them: rows of whole blocks of `type`,
// row r at bytes + r·row_bytes, inside a mapping `keep` holds open.
struct Stored {
  const GgmlTypeInfo* type = nullptr;
  const uint8_t* bytes = nullptr;
  int64_t rows = 0, cols = 0, row_bytes = 0;
  std::shared_ptr<const void> keep;
  // A decoder for rows that are not one ggml type (tquant's codes with their scales):
  // decode(r0, n, dst) writes rows [r0, r0 + n) as f32. type then names the codes' bytes.
  std::function<void(int64_t r0, int64_t n, float* dst)> decode;

  int64_t nbytes() const { return rows * row_bytes; }
  // Rows [r0, r0 + n) as f32 into dst ([n, cols]).
  void rows_to_f32(int64_t r0, int64_t n, float* dst) const;
  // Gives the pages of rows [r0, r0 + n) back to the kernel (they are read again from the
  // file when next touched): streaming a model keeps one block resident, not the file.
  void evict(int64_t r0, int64_t n) const;
  void evict() const { evict(0, rows); }
};

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;                // f32 values; empty while the tensor is only stored
  std::shared_ptr<const Stored> stored;   // the file's values of a lazily loaded tensor

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s, float fill = 0.0f) : shape(std::move(s)), data(count(shape), fill) {}

  static int64_t count(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  // Elements of the shape (0 for a tensor that is absent), whether or not its values are in memory.
  int64_t numel() const { return shape.empty() ? 0 : count(shape); }
  bool empty() const { return numel() == 0; }
  // The f32 values are in memory (every tensor but a stored one that is not loaded).
  bool has_values() const { return (int64_t)data.size() == numel(); }
  int ndim() const { return (int)shape.size(); }
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  // A matrix view: rows = product of all leading dims, cols = last dim.
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  int64_t rows() const { return cols() ? numel() / cols() : 0; }
  float* ptr() { return values().data(); }
  const float* ptr() const { return values().data(); }
  float* row(int64_t r) { return ptr() + r * cols(); }
  const float* row(int64_t r) const { return ptr() + r * cols(); }
  std::span<float> span() { return values(); }
  std::span<const float> span() const { return values(); }

  // Stored values to f32 (nothing when they are in memory already).
  void load_values();
  // Frees the f32 values of a stored tensor and gives its file pages back: the tensor is
  // stored-only again. The caller is done with any change it made to the values.
  void drop_values();
  // Bytes this tensor holds in memory as f32 (0 while only stored).
  int64_t resident_bytes() const { return (int64_t)data.size() * (int64_t)sizeof(float); }
  // Bytes of its values as stored (the file's type), or as f32 when not stored.
  int64_t stored_bytes() const { return stored ? stored->nbytes() : numel() * (int64_t)sizeof(float); }
  const char* type_name() const { return stored ? stored->type->name : "F32"; }

 private:
  std::vector<float>& values();
  const std::vector<float>& values() const;
};

// A tensor whose values stay in a file: rows of `type` starting at bytes (the last
// dimension holds whole blocks), kept readable by `keep` (the mapping).
Tensor stored_tensor(std::vector<int64_t> shape, const GgmlTypeInfo* type, const uint8_t* bytes,
                     std::shared_ptr<const void> keep);

std::string shape_str(const std::vector<int64_t>& s);

}  // namespace tq
