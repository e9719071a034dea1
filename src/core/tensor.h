// The one tensor type: a shape and a contiguous row-major float buffer.
// Every model weight and activation is f32 in memory; other dtypes are
// converted when files are read and written (see dtype.h).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tq {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s, float fill = 0.0f) : shape(std::move(s)), data(count(shape), fill) {}

  static int64_t count(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
  int64_t numel() const { return (int64_t)data.size(); }
  bool empty() const { return data.empty(); }
  int ndim() const { return (int)shape.size(); }
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
  // A matrix view: rows = product of all leading dims, cols = last dim.
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  int64_t rows() const { return cols() ? numel() / cols() : 0; }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  float* row(int64_t r) { return data.data() + r * cols(); }
  const float* row(int64_t r) const { return data.data() + r * cols(); }
  std::span<float> span() { return data; }
  std::span<const float> span() const { return data; }
};

std::string shape_str(const std::vector<int64_t>& s);

}  // namespace tq
