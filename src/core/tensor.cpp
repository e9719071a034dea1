#include "core/tensor.h"

#include "core/parallel.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"

namespace tq {

void Stored::rows_to_f32(int64_t r0, int64_t n, float* dst) const {
  if (r0 < 0 || n < 0 || r0 + n > rows) run_failed("stored rows [{}, {}) of {}", r0, r0 + n, rows);
  // Rows are whole blocks, so a run of rows converts as one call.
  if (decode) return decode(r0, n, dst);
  type->to_f32(bytes + r0 * row_bytes, dst, n * cols);
}

void Stored::evict(int64_t r0, int64_t n) const {
  static const int64_t page = sysconf(_SC_PAGESIZE);
  // Only whole pages inside the range: a neighbour's page may still be in use.
  int64_t begin = ((int64_t)(uintptr_t)(bytes + r0 * row_bytes) + page - 1) / page * page;
  int64_t end = (int64_t)(uintptr_t)(bytes + (r0 + n) * row_bytes) / page * page;
  if (end > begin) madvise((void*)(uintptr_t)begin, (size_t)(end - begin), MADV_DONTNEED);
}

std::vector<float>& Tensor::values() {
  if ((int64_t)data.size() != numel())
    run_failed("internal: tensor {} used before its stored values were loaded", shape_str(shape));
  return data;
}

const std::vector<float>& Tensor::values() const { return const_cast<Tensor*>(this)->values(); }

void Tensor::load_values() {
  if (has_values() || !stored) return;
  data.resize(numel());
  constexpr int64_t kRows = 64;  // conversion is per row: chunks of rows in parallel
  const Stored& s = *stored;
  parallel_for((s.rows + kRows - 1) / kRows, [&](int64_t b) {
    const int64_t r0 = b * kRows;
    s.rows_to_f32(r0, std::min(kRows, s.rows - r0), data.data() + r0 * s.cols);
  });
}

void Tensor::drop_values() {
  if (!stored) return;
  data = std::vector<float>();
  stored->evict();
}

Tensor stored_tensor(std::vector<int64_t> shape, const GgmlTypeInfo* type, const uint8_t* bytes,
                     std::shared_ptr<const void> keep) {
  Tensor t;
  t.shape = std::move(shape);
  auto s = std::make_shared<Stored>();
  s->type = type;
  s->bytes = bytes;
  s->cols = t.cols();
  s->rows = t.rows();
  if (s->cols % type->block) run_failed("internal: rows of {} are not whole {} blocks", s->cols, type->name);
  s->row_bytes = s->cols / type->block * type->bytes;
  s->keep = std::move(keep);
  t.stored = std::move(s);
  return t;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += fmt::format("{}{}", i ? ", " : "", s[i]);
  return out + "]";
}

}  // namespace tq
