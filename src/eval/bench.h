// Benchmarks report ratios of two things measured in the same run (ours vs
// BLAS or oneDNN, int8 vs fp32), never absolute thresholds.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tq {

struct BenchCase {
  std::string name;   // e.g. "gemm_f32", "decode"
  std::string shape;  // e.g. "512x4096x4096", "stories260K"
  std::string ours, base;  // what is compared: ours / base
  double ours_value = 0, base_value = 0;  // in unit (higher is better)
  std::string unit;   // "GFLOP/s", "tok/s"
  nlohmann::json extra = nlohmann::json::object();  // further figures of the case (model bytes, RSS)
  std::string note = "";  // printed after the row (e.g. "31 % of peak")
  double ratio() const { return base_value > 0 ? ours_value / base_value : 0; }
  nlohmann::json json() const;
};

// Seconds on a monotonic clock: wall time, or with cpu_clock the process's CPU
// time (summed over its threads; with one thread it discounts other processes
// on a shared machine).
double clock_seconds(bool cpu_clock);
// Resident set size of this process now, and its peak (VmHWM) in bytes; the
// peak can be reset (Linux clear_refs) so that it covers one phase only.
int64_t rss_bytes();
int64_t peak_rss_bytes();
void reset_peak_rss();

// Best-of wall time in seconds of f, repeated until min_seconds have passed (at least min_reps).
double time_best(const std::function<void()>& f, int min_reps = 3, double min_seconds = 0.3);

// fp32 GEMM through our linear op vs the raw BLAS call, at M×N×K.
BenchCase bench_gemm_f32(int M, int N, int K);

void print_bench_table(const std::vector<BenchCase>& cases);

}  // namespace tq
