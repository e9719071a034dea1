// One thread count for the whole process: OpenMP loops and BLAS use the same.
// Results are bit-identical for the same inputs and thread count.
#pragma once
#include <cstdint>

namespace tq {

void set_threads(int n);  // n <= 0: all hardware threads
int num_threads();
int64_t machine_memory_bytes();  // physical memory, the bound for what one run may allocate

}  // namespace tq

namespace tq {

// While alive, BLAS runs on the calling thread only: for loops that give
// each OpenMP thread its own sequence (small models, many sequences).
struct SerialBlas {
  SerialBlas();
  ~SerialBlas();
};

}  // namespace tq
