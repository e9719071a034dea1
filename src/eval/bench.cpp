#include "eval/bench.h"

#include <cblas.h>
#include <fmt/format.h>

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "core/rng.h"
#include "nn/ops.h"

namespace tq {

nlohmann::json BenchCase::json() const {
  nlohmann::json j = {{"name", name}, {"shape", shape}, {"ours", ours}, {"base", base}, {"ours_value", ours_value},
                      {"base_value", base_value}, {"unit", unit}, {"ratio", ratio()}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

double clock_seconds(bool cpu_clock) {
  timespec ts;
  clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (int64_t)u.ru_maxrss * 1024;
}

void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

double time_best(const std::function<void()>& f, int min_reps, double min_seconds) {
  using clk = std::chrono::steady_clock;
  double best = 1e30, total = 0;
  for (int r = 0; r < min_reps || total < min_seconds; r++) {
    auto t0 = clk::now();
    f();
    double s = std::chrono::duration<double>(clk::now() - t0).count();
    best = std::min(best, s);
    total += s;
    if (r > 1000) break;
  }
  return best;
}

BenchCase bench_gemm_f32(int M, int N, int K) {
  std::vector<float> x((size_t)M * K), w((size_t)N * K), b(N), y((size_t)M * N);
  Rng rng(1);
  for (auto& v : x) v = rng.uniform() - 0.5f;
  for (auto& v : w) v = rng.uniform() - 0.5f;
  double flop = 2.0 * M * N * K;
  double ours = time_best([&] { linear_forward(y.data(), x.data(), w.data(), b.data(), M, K, N); });
  double blas = time_best([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
  });
  return {"gemm_f32", fmt::format("{}x{}x{}", M, N, K), "tquant linear (f32)", "OpenBLAS sgemm",
          flop / ours / 1e9, flop / blas / 1e9, "GFLOP/s"};
}

void print_bench_table(const std::vector<BenchCase>& cases) {
  fmt::print("{:<14} {:<22} {:>12} {:>12} {:>8}  {}\n", "case", "shape", "ours", "base", "ratio", "ours / base");
  for (auto& c : cases)
    fmt::print("{:<14} {:<22} {:>12.2f} {:>12.2f} {:>7.2f}x  {} / {} ({}){}\n", c.name, c.shape, c.ours_value,
               c.base_value, c.ratio(), c.ours, c.base, c.unit, c.note.empty() ? "" : "; " + c.note);
}

}  // namespace tq
