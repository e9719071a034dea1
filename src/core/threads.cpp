#include "core/threads.h"

#include <omp.h>
#include <unistd.h>

#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace tq {

static int g_threads = 0;

void set_threads(int n) {
  if (n <= 0) n = (int)std::thread::hardware_concurrency();
  if (n <= 0) n = 1;
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() {
  if (g_threads == 0) set_threads(0);
  return g_threads;
}

int64_t machine_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? (int64_t)pages * page : int64_t(1) << 34;
}

}  // namespace tq

namespace tq {

SerialBlas::SerialBlas() { openblas_set_num_threads(1); }
SerialBlas::~SerialBlas() { openblas_set_num_threads(num_threads()); }

}  // namespace tq
