#include "core/ranks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/error.h"

#ifdef TQ_HAVE_MPI
#include <mpi.h>
#endif

namespace tq::ranks {

namespace {
int g_rank = 0, g_size = 1;
std::FILE* g_errors = nullptr;  // where a failure is reported: stderr, or a copy of it on ranks > 0
#ifdef TQ_HAVE_MPI
bool g_mpi = false;  // MPI_Init was called (only under a launcher: a plain run stays MPI-free)
#endif
}  // namespace

void init(int* argc, char*** argv) {
#ifdef TQ_HAVE_MPI
  // Open MPI's launchers set these; without them tquant runs as the one process it always was.
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMIX_RANK") && !std::getenv("PMI_RANK")) return;
  int provided = 0;
  // FUNNELED: only the main thread calls MPI (the OpenMP workers never do).
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "tquant: error: MPI_Init failed\n");
    std::exit(1);
  }
  g_mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (g_rank != 0) {  // one copy of every report and notice: rank 0's; failures from every rank
    int null = open("/dev/null", O_WRONLY), err = dup(STDERR_FILENO);
    if (null >= 0 && err >= 0) {
      g_errors = fdopen(err, "w");
      if (g_errors) setvbuf(g_errors, nullptr, _IONBF, 0);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
    }
    if (null >= 0) close(null);
  }
#else
  (void)argc, (void)argv;
#endif
}

void finalize() {
#ifdef TQ_HAVE_MPI
  if (g_mpi) MPI_Finalize();
  g_mpi = false;
#endif
}

int rank() { return g_rank; }
std::FILE* errors() { return g_errors ? g_errors : stderr; }
int size() { return g_size; }

void abort_all(int code) {
#ifdef TQ_HAVE_MPI
  if (g_mpi && g_size > 1) {
    std::fflush(errors());
    MPI_Abort(MPI_COMM_WORLD, code);
  }
#endif
  (void)code;
}

std::vector<double> gather_all(const std::vector<double>& mine) {
#ifdef TQ_HAVE_MPI
  if (g_mpi && g_size > 1) {
    // Counts first (as int: MPI's counts), then the values at their rank-order offsets.
    TQ_ASSERT(mine.size() < (size_t)(1u << 31) / 2, "{} values are too many to send at once", mine.size());
    int n = (int)mine.size();
    std::vector<int> counts(g_size), offsets(g_size);
    MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD);
    int64_t total = 0;
    for (int r = 0; r < g_size; r++) {
      offsets[r] = (int)total;
      total += counts[r];
    }
    TQ_ASSERT(total < (int64_t)(1u << 31), "{} values are too many to gather at once", total);
    std::vector<double> all(total);
    MPI_Allgatherv(mine.data(), n, MPI_DOUBLE, all.data(), counts.data(), offsets.data(), MPI_DOUBLE, MPI_COMM_WORLD);
    return all;
  }
#endif
  return mine;
}

std::vector<std::vector<double>> gather_items(int64_t n, const std::vector<std::vector<double>>& mine) {
  TQ_ASSERT((int64_t)mine.size() == my_share(n).end - my_share(n).begin, "{} results for a share of {} items",
            mine.size(), my_share(n).end - my_share(n).begin);
  if (g_size == 1) return mine;
  std::vector<double> packed;
  for (const auto& v : mine) {
    packed.push_back((double)v.size());
    packed.insert(packed.end(), v.begin(), v.end());
  }
  const std::vector<double> all = gather_all(packed);
  std::vector<std::vector<double>> out;
  size_t at = 0;
  while (at < all.size()) {
    const size_t len = (size_t)all[at];
    TQ_ASSERT(len <= all.size() - at - 1, "a gathered item claims {} values, {} are left", len, all.size() - at - 1);
    out.emplace_back(all.begin() + at + 1, all.begin() + at + 1 + len);
    at += 1 + len;
  }
  TQ_ASSERT((int64_t)out.size() == n, "the ranks gathered {} items, {} expected", out.size(), n);
  return out;
}

int64_t sum_all(int64_t mine) {
#ifdef TQ_HAVE_MPI
  if (g_mpi && g_size > 1) {
    int64_t all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    return all;
  }
#endif
  return mine;
}

}  // namespace tq::ranks
