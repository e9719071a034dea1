// GEMM figures for `tquant bench` and the issue note: ours (each fast path)
// against OpenBLAS sgemm and oneDNN's int8 matmul, timed in the same run.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tq {

// One comparison: `ours` against `baseline` on one shape, in GOP/s
// (2·M·N·K operations per call); ratio = ours / baseline.
struct BenchCase {
  std::string kernel;  // "int8 K1", "w4g64 K4"
  int64_t M = 0, N = 0, K = 0;
  std::string ours, baseline;  // "avx512", "openblas sgemm", "onednn int8"
  double ours_gops = 0, baseline_gops = 0, ratio = 0;
};

struct GemmBenchOptions {
  std::vector<int64_t> M = {1, 16, 128, 512};
  std::vector<int64_t> NK = {1024, 4096};  // N = K
  double seconds = 0.1;  // per timing batch
  int rounds = 3;        // batches per contender, interleaved; the fastest counts
  bool scalar = false;   // also time the (slow) scalar path
};

// Runs every shape; on_case (if set) sees each case as soon as it is measured.
std::vector<BenchCase> bench_gemm_cases(const GemmBenchOptions& opt,
                                        const std::function<void(const BenchCase&)>& on_case = {});

}  // namespace tq
