// Google Benchmark targets for the kernels: every GEMM contender of
// bench_gemm.h (fast paths only) on M ∈ {1, 16, 128, 512} × N = K ∈ {1024, 4096},
// K5 and the per-token quantizer. Ratios come from `tquant bench`, which times the
// contenders interleaved in one run; these targets give per-kernel detail.
//   ./build/bench_kernels --benchmark_filter='gemm/int8_k1/tquant avx512'
#include <benchmark/benchmark.h>

#include "core/rng.h"
#include "kernels/bench_gemm.h"
#include "kernels/gemm_int8.h"
#include "kernels/pv_log.h"

namespace tq {
namespace {

void gemm(benchmark::State& st, int64_t M, int64_t NK, size_t which) {
  GemmContender c = gemm_contenders(M, NK, NK, false)[which];
  c.call();  // warm-up, untimed
  for (auto _ : st) c.call();
  st.counters["GOP/s"] = benchmark::Counter(2.0 * M * NK * NK, benchmark::Counter::kIsIterationInvariantRate);
}

void pv(benchmark::State& st, Isa isa, int bits) {
  const int64_t Sq = st.range(0), Sk = st.range(1), D = st.range(2);
  Rng rng(1);
  std::vector<uint8_t> q(Sq * Sk);
  for (auto& v : q) v = (uint8_t)rng.below(1 << std::min(bits, 7));
  std::vector<int8_t> v(Sk * D);
  for (auto& x : v) x = (int8_t)(rng.below(255) - 127);
  std::vector<float> out(Sq * D);
  for (auto _ : st) pv_log({q.data(), Sq, Sk, Sk, bits, 0.5f}, {v.data(), Sk, D, D, 0.01f}, out.data(), D, isa);
  st.counters["Gterm/s"] = benchmark::Counter(1.0 * Sq * Sk * D, benchmark::Counter::kIsIterationInvariantRate);
}

void quantize(benchmark::State& st, Isa isa) {
  const int64_t M = st.range(0), C = st.range(1);
  std::vector<float> x(M * C), s(M);
  Rng rng(1);
  for (auto& v : x) v = (float)rng.normal();
  std::vector<int8_t> q(M * C);
  for (auto _ : st) quantize_per_token(x.data(), M, C, C, q.data(), C, s.data(), isa);
  st.SetBytesProcessed(st.iterations() * M * C * 4);
}

void register_all() {
  const std::vector<GemmContender> names = gemm_contenders(1, 64, 64, false);
  for (int64_t NK : {1024, 4096})
    for (int64_t M : {1, 16, 128, 512})
      for (size_t i = 0; i < names.size(); i++) {
        const std::string name = "gemm/" + names[i].kernel + "/" + names[i].name + "/M:" + std::to_string(M) +
                                 "/NK:" + std::to_string(NK);
        benchmark::RegisterBenchmark(name.c_str(), gemm, M, NK, i)->Unit(benchmark::kMillisecond)->UseRealTime();
      }
  for (Isa isa : supported_isas()) {
    for (int bits : {4, 8})
      benchmark::RegisterBenchmark(("pv_log/b" + std::to_string(bits) + "/" + isa_name(isa)).c_str(), pv, isa, bits)
          ->Args({1, 2048, 128})
          ->Args({512, 512, 64})
          ->UseRealTime();
    benchmark::RegisterBenchmark((std::string("quantize_per_token/") + isa_name(isa)).c_str(), quantize, isa)
        ->Args({1, 4096})
        ->Args({512, 4096})
        ->UseRealTime();
  }
}

}  // namespace
}  // namespace tq

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  tq::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
