#include "kernels/bench_gemm.h"

#include <cblas.h>

#include <omp.h>
#include <time.h>

#include <chrono>
#include <memory>

#include "core/dtype.h"
#include "core/rng.h"
#include "io/ggml_quants.h"
#include "io/ggml_types.h"
#include "kernels/gemm_int8.h"
#include "kernels/gemm_lowbit.h"

#ifdef TQ_HAVE_DNNL
#include <dnnl.hpp>
#endif

namespace tq {

namespace {

// The operands of one shape, shared by every contender's call.
struct Operands {
  int64_t M, N, K;
  std::vector<float> x, w, y, scale, bias;
  std::vector<uint8_t> xq;
  std::vector<int8_t> wq;
  Int8Packed w8;
  LowbitPacked w4, q4_0;
  std::vector<int8_t> xa;
  std::vector<float> xa_step;
  static constexpr int32_t kZero = 128;
  static constexpr float kStep = 0.02f;

  Operands(int64_t M_, int64_t N_, int64_t K_) : M(M_), N(N_), K(K_) {
    Rng rng(1);
    x.resize(M * K);
    w.resize(N * K);
    y.resize(M * N);
    xq.resize(M * K);
    wq.resize(N * K);
    for (auto& v : x) v = rng.uniform() - 0.5f;
    for (auto& v : w) v = rng.uniform() - 0.5f;
    for (auto& v : xq) v = (uint8_t)rng.below(256);
    for (auto& v : wq) v = (int8_t)(rng.below(255) - 127);
    scale.assign(N, 1e-3f);
    bias.assign(N, 0.1f);
    w8 = pack_int8({wq.data(), N, K, scale.data(), bias.data()});
    // K4 at HQQ's recommended b4g64 (docs/methods.md §5.8).
    std::vector<uint8_t> q4(N * K);
    for (auto& v : q4) v = (uint8_t)rng.below(16);
    const int64_t groups = (K + 63) / 64;
    std::vector<uint16_t> s4(N * groups, f32_to_f16(0.01f)), z4(N * groups, f32_to_f16(7.5f));
    w4 = pack_lowbit({q4.data(), N, K, 4, 64, s4.data(), z4.data(), bias.data()});
    // K4-a8's activations: int8 codes with a step per row, as a per-token site leaves them.
    xa.resize(M * K);
    for (auto& v : xa) v = (int8_t)(rng.below(255) - 127);
    xa_step.assign(M, 0.01f);
    // llama.cpp's Q4_0 of the float weight, by the reference encoder.
    if (K % 32 == 0) {
      std::vector<uint8_t> blocks(N * K / 32 * 18);
      quantize_q4_0(w.data(), blocks.data(), N * K);
      q4_0 = pack_ggml(ggml_q4_0, blocks.data(), N, K, bias.data());
    }
  }
};

#ifdef TQ_HAVE_DNNL
// oneDNN's int8 matmul, u8 source × s8 weights in the layout oneDNN prefers
// (reordered once, untimed). Plain: int32 output, no attributes (its fastest
// form). As K1: the same computation as ours, with the zero point, per-output
// scales and bias given when the primitive is created (fixed per layer in a
// model; given per call, oneDNN 2.6 drops from brgemm to its slower jit gemm).
struct DnnlInt8 {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul mm;
  std::unordered_map<int, dnnl::memory> args;
  std::vector<int32_t> y32;

  DnnlInt8(Operands& d, bool as_k1) {
    using namespace dnnl;
    using dt = memory::data_type;
    using tag = memory::format_tag;
    memory::desc a_md({d.M, d.K}, dt::u8, tag::ab), w_any({d.K, d.N}, dt::s8, tag::any);
    memory::desc w_md({d.K, d.N}, dt::s8, tag::ba), b_md({1, d.N}, dt::f32, tag::ab);
    memory::desc y_md({d.M, d.N}, as_k1 ? dt::f32 : dt::s32, tag::ab);
    primitive_attr attr;
    if (as_k1) {
      std::vector<float> scales(d.N);
      for (int64_t o = 0; o < d.N; o++) scales[o] = Operands::kStep * d.scale[o];
      attr.set_output_scales(2, scales);
      attr.set_zero_points(DNNL_ARG_SRC, 0, {Operands::kZero});
    }
    matmul::primitive_desc pd = as_k1 ? matmul::primitive_desc(matmul::desc(a_md, w_any, b_md, y_md), attr, eng)
                                      : matmul::primitive_desc(matmul::desc(a_md, w_any, y_md), attr, eng);
    memory w_user(w_md, eng, d.wq.data()), w_packed(pd.weights_desc(), eng);
    reorder(w_user, w_packed).execute(strm, w_user, w_packed);
    strm.wait();
    mm = matmul(pd);
    y32.resize(as_k1 ? 0 : d.M * d.N);
    args = {{DNNL_ARG_SRC, memory(a_md, eng, d.xq.data())},
            {DNNL_ARG_WEIGHTS, w_packed},
            {DNNL_ARG_DST, memory(y_md, eng, as_k1 ? (void*)d.y.data() : (void*)y32.data())}};
    if (as_k1) args[DNNL_ARG_BIAS] = memory(b_md, eng, d.bias.data());
  }
  void run() {
    mm.execute(strm, args);
    strm.wait();
  }
};
#endif

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

double thread_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

}  // namespace

double measure_clock_ghz() {
  double best = 0;
  for (int attempt = 0; attempt < 3; attempt++) {
    double slowest = 1e30;
#pragma omp parallel reduction(min : slowest)
    {
      constexpr int64_t kIters = 20'000'000;  // × 8 adds: 160 M cycles, ~0.05 s
      uint64_t x = 0, step = 1, n = kIters;
      const double t0 = thread_cpu_seconds();
      __asm__ volatile(
          "1:\n\t"
          "add %[s], %[x]\n\tadd %[s], %[x]\n\tadd %[s], %[x]\n\tadd %[s], %[x]\n\t"
          "add %[s], %[x]\n\tadd %[s], %[x]\n\tadd %[s], %[x]\n\tadd %[s], %[x]\n\t"
          "dec %[n]\n\tjnz 1b"
          : [x] "+r"(x), [n] "+r"(n)
          : [s] "r"(step));
      const double t = thread_cpu_seconds() - t0;
      slowest = std::min(slowest, 8.0 * kIters / t * 1e-9);
    }
    best = std::max(best, slowest);
  }
  return best;
}

std::vector<GemmContender> gemm_contenders(int64_t M, int64_t N, int64_t K, bool scalar) {
  auto d = std::make_shared<Operands>(M, N, K);
  std::vector<GemmContender> cs;
  cs.push_back({"fp32", M == 1 ? "OpenBLAS sgemv" : "OpenBLAS sgemm", true, [d] {
                  if (d->M == 1)
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, d->N, d->K, 1.0f, d->w.data(), d->K, d->x.data(), 1, 0.0f,
                                d->y.data(), 1);
                  else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->M, d->N, d->K, 1.0f, d->x.data(), d->K,
                                d->w.data(), d->K, 0.0f, d->y.data(), d->N);
                }});
#ifdef TQ_HAVE_DNNL
  auto plain = std::make_shared<DnnlInt8>(*d, false), as_k1 = std::make_shared<DnnlInt8>(*d, true);
  // Each call keeps the operands alive: the primitives read and write d's buffers.
  cs.push_back({"int8_k1", "oneDNN u8s8s32", true, [plain, d] { plain->run(); }});
  cs.push_back({"int8_k1", "oneDNN as K1", true, [as_k1, d] { as_k1->run(); }});
#endif
  for (Isa isa : supported_isas()) {
    if (isa == Isa::scalar && !scalar) continue;
    cs.push_back({"int8_k1", std::string("tquant ") + isa_name(isa), false, [d, isa] {
                    gemm_int8(acts_u8(d->xq.data(), d->M, d->K, Operands::kStep, Operands::kZero), d->w8, d->y.data(), d->N,
                              isa);
                  }});
  }
  for (Isa isa : supported_isas()) {
    if ((isa == Isa::scalar && !scalar) || isa == Isa::amx) continue;  // AMX machines run K4's AVX-512 kernel
    cs.push_back({"w4g64_k4", std::string("tquant ") + isa_name(isa), false,
                  [d, isa] { gemm_lowbit(d->x.data(), d->M, d->K, d->w4, d->y.data(), d->N, isa); }});
  }
  for (Isa isa : supported_isas()) {
    if (isa == Isa::scalar && !scalar) continue;
    cs.push_back({"w4g64_a8", std::string("tquant ") + isa_name(isa), false, [d, isa] {
                    gemm_lowbit_a8(d->xa.data(), d->xa_step.data(), d->M, d->K, d->w4, d->y.data(), d->N, isa);
                  }});
    if (K % 32 == 0)
      cs.push_back({"q4_0_a8", std::string("tquant ") + isa_name(isa), false, [d, isa] {
                      gemm_lowbit_a8(d->xa.data(), d->xa_step.data(), d->M, d->K, d->q4_0, d->y.data(), d->N, isa);
                    }});
  }
  return cs;
}

std::vector<GemmBenchCase> bench_gemm_cases(const GemmBenchOptions& opt,
                                            const std::function<void(const GemmBenchCase&)>& on_case) {
  std::vector<GemmBenchCase> out;
  const double ghz = opt.clock_ghz > 0 ? opt.clock_ghz : measure_clock_ghz();
  const int cores = std::min(omp_get_max_threads(), omp_get_num_procs());
  for (int64_t NK : opt.NK)
    for (int64_t M : opt.M) {
      std::vector<GemmContender> cs = gemm_contenders(M, NK, NK, opt.scalar);
      // Interleaved batches, so that load from other processes hits every
      // contender alike; each keeps its fastest batch.
      std::vector<double> best(cs.size(), 1e30);
      double (*now)() = opt.cpu_clock ? cpu_seconds : wall_seconds;
      for (auto& c : cs) c.call();  // warm caches, JIT kernels and thread pools
      for (int round = 0; round < opt.rounds; round++)
        for (size_t i = 0; i < cs.size(); i++) {
          int n = 0;
          double t0 = now(), t;
          do {
            cs[i].call();
            n++;
            t = now();
          } while (t - t0 < opt.seconds);
          best[i] = std::min(best[i], (t - t0) / n);
        }
      const double gop = 2.0 * M * NK * NK * 1e-9;
      for (size_t i = 0; i < cs.size(); i++) {
        if (cs[i].baseline) continue;
        for (size_t b = 0; b < cs.size(); b++) {
          if (!cs[b].baseline || (cs[b].kernel != "fp32" && cs[b].kernel != cs[i].kernel)) continue;
          GemmBenchCase c{"gemm_" + cs[i].kernel, M, NK, NK, cs[i].name, cs[b].name, gop / best[i], gop / best[b]};
          if (cs[i].kernel == "int8_k1" && (cs[i].name == "tquant amx" || cs[i].name == "tquant avx512"))
            c.peak_gops = cores * ghz * (cs[i].name == "tquant amx" ? kAmxOpsPerCycle : kVnniOpsPerCycle);
          if (on_case) on_case(c);
          out.push_back(c);
        }
      }
    }
  return out;
}

}  // namespace tq
