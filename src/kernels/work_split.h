// How kernels share work between OpenMP threads.
#pragma once
#include <cstdint>

namespace tq::detail {

// Thread t's contiguous share of n work items. Each output is computed by one
// thread in a fixed order, so results do not depend on the thread count.
inline void split_range(int64_t n, int t, int nt, int64_t& begin, int64_t& end) {
  begin = n * t / nt;
  end = n * (t + 1) / nt;
}

// Multiply-adds below which a call runs on the calling thread: waking a team
// costs more than small layers (a 64 × 64 decode step) take. Each output is
// still computed in the same order, so the bits do not change.
constexpr int64_t kParallelWork = int64_t(1) << 20;

// AMX pays for whole 16- or 32-row blocks; below this many rows the AVX-512
// kernels run instead (same bits).
constexpr int64_t kAmxMinRows = 8;

}  // namespace tq::detail
