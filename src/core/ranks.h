// Several processes (MPI ranks, `mpirun -np N tquant ...`) sharing one job. Work
// made of independent items (evaluation sequences, allocator probes) is split into
// contiguous shares in rank order; each rank computes its items' results, and
// gather_all brings every item's result to every rank in item order. The figures
// are then combined by the same code, in the same order, as in one process: the
// same bits for any N. Without MPI (built with -DTQ_MPI=OFF, or run without mpirun)
// rank() is 0, size() is 1 and gather_all returns its argument.
//
// Only rank 0 prints, shows progress and writes outputs: init() sends the other
// ranks' stdout and stderr to /dev/null (a failure is reported on errors()), and
// the atomic writers ask root().
#pragma once
#include <cstdint>
#include <cstdio>
#include <vector>

namespace tq::ranks {

void init(int* argc, char*** argv);  // at the start of main (before threads exist)
void finalize();                      // at a normal end of main
int rank();
int size();
inline bool root() { return rank() == 0; }
std::FILE* errors();  // where a failure is printed: stderr, on every rank

// After a failure on this rank has been printed: ends every rank with `code`, so
// that none waits forever for it at the next gather. Returns when size() is 1.
void abort_all(int code);

struct Share {
  int64_t begin = 0, end = 0;
};
// Rank r's items of n among N ranks: [⌊r·n/N⌋, ⌊(r+1)·n/N⌋), so the shares tile [0, n)
// in rank order and differ in size by one at most.
inline Share share_of(int64_t n, int r, int N) { return {n * r / N, n * (r + 1) / N}; }
inline Share my_share(int64_t n) { return share_of(n, rank(), size()); }

// Every rank's values, concatenated in rank order, on every rank (MPI_Allgatherv).
// With results packed in item order per rank, the result is in item order.
std::vector<double> gather_all(const std::vector<double>& mine);
// Items whose results are several values each (a fitted quantizer, a sequence's figures):
// mine[k] holds the values of item my_share(n).begin + k; every rank gets every item's values,
// in item order (one gather_all, each item's values after their count).
std::vector<std::vector<double>> gather_items(int64_t n, const std::vector<std::vector<double>>& mine);
// The sum over the ranks of an exact count (every rank gets it).
int64_t sum_all(int64_t mine);

}  // namespace tq::ranks
