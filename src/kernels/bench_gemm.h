// GEMM figures for `tquant bench`, the Google Benchmark targets and the issue
// note: ours (each fast path) against OpenBLAS sgemm and oneDNN's int8 matmul,
// timed in the same run.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tq {

// One thing timed on an M × N × K shape. `call` owns its data (weights packed
// and activations quantized beforehand, untimed).
struct GemmContender {
  std::string kernel;  // "fp32" or one of kGemmKernels
  std::string name;    // "OpenBLAS sgemm", "oneDNN u8s8s32", "oneDNN as K1", or "tquant <path>"
  bool baseline = false;
  std::function<void()> call;
};

// The kernels the cases time ("gemm_" + kernel names a case).
inline constexpr const char* kGemmKernels[] = {"int8_k1", "w4g64_k4", "w4g64_a8", "q4_0_a8"};

// fp32: OpenBLAS sgemm (sgemv for M = 1). int8 K1: oneDNN's u8×s8 matmul
// (when built with oneDNN) plain into int32 and as K1 (zero point, scales and
// bias into f32), and ours on each path. w4g64 K4: ours on each path, f32
// activations.
std::vector<GemmContender> gemm_contenders(int64_t M, int64_t N, int64_t K, bool scalar);

// One comparison: `ours` against `base` on one shape, in GOP/s (2·M·N·K
// operations per call). Fields follow the CLI's bench cases.
struct GemmBenchCase {
  std::string name;  // "gemm_int8_k1", "gemm_w4g64_k4"
  int64_t M = 0, N = 0, K = 0;
  std::string ours, base;
  double ours_gops = 0, base_gops = 0;
  double peak_gops = 0;  // the int8 peak of ours' path (AMX or VNNI) at the measured clock, or 0
  double ratio() const { return base_gops > 0 ? ours_gops / base_gops : 0; }
  std::string shape() const { return std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K); }
};

struct GemmBenchOptions {
  std::vector<int64_t> M = {1, 16, 128, 512};
  std::vector<int64_t> NK = {1024, 4096};  // N = K
  double seconds = 0.02;  // per timing batch
  int rounds = 15;        // batches per contender, interleaved; the fastest counts
  bool scalar = false;    // also time the (slow) scalar path
  // Time by the process's CPU time instead of the wall clock. With one thread
  // this leaves out the time other processes take from the core on a shared
  // machine; with more it would count threads waiting at barriers as work.
  bool cpu_clock = false;
  double clock_ghz = 0;  // for the int8 peaks; 0: measure_clock_ghz()
};

// The cores' clock in GHz, measured: every thread at once runs a chain of
// dependent register adds (one per cycle; not add-immediate, which recent cores
// fold), timed by its own CPU clock; the slowest thread of the best of 3 tries.
double measure_clock_ghz();
// int8 operations (2 per multiply-add) per cycle and core: AMX tdpbusd does
// 16×16×64 multiply-adds per 16 cycles; AVX-512 VNNI two 64-lane vpdpbusd per cycle.
constexpr double kAmxOpsPerCycle = 2048, kVnniOpsPerCycle = 256;

// Every shape: ours against OpenBLAS, and int8 against oneDNN. on_case (if set)
// sees each case as soon as it is measured.
std::vector<GemmBenchCase> bench_gemm_cases(const GemmBenchOptions& opt,
                                            const std::function<void(const GemmBenchCase&)>& on_case = {});

}  // namespace tq
