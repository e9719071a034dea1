// Vectors aligned to 64 bytes (one cache line, one zmm register), so packed
// weights and scratch rows never straddle lines at their start.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace tq {

template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
};

template <class T>
using avector = std::vector<T, Aligned64<T>>;

}  // namespace tq
