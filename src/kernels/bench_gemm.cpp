#include "kernels/bench_gemm.h"

#include <cblas.h>

#include <chrono>
#include <memory>

#include "core/rng.h"
#include "core/dtype.h"
#include "kernels/gemm_int8.h"
#include "kernels/gemm_lowbit.h"

#ifdef TQ_HAVE_DNNL
#include <dnnl.hpp>
#endif

namespace tq {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// A contender: a name and one call of the GEMM.
struct Runner {
  std::string name;
  std::function<void()> call;
  double best = 1e30;  // seconds per call
};

// Times every runner in interleaved rounds, so that load from other processes
// hits all of them alike; each keeps its fastest batch.
void time_runners(std::vector<Runner>& rs, const GemmBenchOptions& opt) {
  for (auto& r : rs) r.call();  // warm caches, JIT and thread pools
  for (int round = 0; round < opt.rounds; round++)
    for (auto& r : rs) {
      int n = 0;
      double t0 = now(), t;
      do {
        r.call();
        n++;
        t = now();
      } while (t - t0 < opt.seconds);
      r.best = std::min(r.best, (t - t0) / n);
    }
}

#ifdef TQ_HAVE_DNNL
// oneDNN's int8 matmul on the same computation as K1: u8 source with a zero
// point, s8 weights in the layout oneDNN prefers (reordered once, untimed),
// per-output scales, f32 bias and output.
struct DnnlInt8 {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul mm;
  std::unordered_map<int, dnnl::memory> args;
  int32_t zero;

  DnnlInt8(const uint8_t* a, const int8_t* w, const float* scale, const float* bias, float* y, int64_t M, int64_t N,
           int64_t K, int32_t z)
      : zero(z) {
    using namespace dnnl;
    using dt = memory::data_type;
    using tag = memory::format_tag;
    memory::desc a_md({M, K}, dt::u8, tag::ab), w_any({K, N}, dt::s8, tag::any), w_md({K, N}, dt::s8, tag::ba);
    memory::desc y_md({M, N}, dt::f32, tag::ab), b_md({1, N}, dt::f32, tag::ab);
    primitive_attr attr;
    attr.set_output_scales(2, {DNNL_RUNTIME_F32_VAL});
    attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    matmul::primitive_desc pd(matmul::desc(a_md, w_any, b_md, y_md), attr, eng);
    memory w_user(w_md, eng, const_cast<int8_t*>(w)), w_packed(pd.weights_desc(), eng);
    reorder(w_user, w_packed).execute(strm, w_user, w_packed);
    strm.wait();
    mm = matmul(pd);
    args = {{DNNL_ARG_SRC, memory(a_md, eng, const_cast<uint8_t*>(a))},
            {DNNL_ARG_WEIGHTS, w_packed},
            {DNNL_ARG_BIAS, memory(b_md, eng, const_cast<float*>(bias))},
            {DNNL_ARG_DST, memory(y_md, eng, y)},
            {DNNL_ARG_ATTR_OUTPUT_SCALES, memory({{N}, dt::f32, tag::a}, eng, const_cast<float*>(scale))},
            {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, memory({{1}, dt::s32, tag::a}, eng, &zero)}};
  }
  void run() {
    mm.execute(strm, args);
    strm.wait();
  }
};
#endif

std::vector<Isa> fast_paths(bool scalar) {
  std::vector<Isa> v;
  for (Isa i : supported_isas())
    if (i != Isa::scalar || scalar) v.push_back(i);
  return v;
}

}  // namespace

std::vector<BenchCase> bench_gemm_cases(const GemmBenchOptions& opt,
                                        const std::function<void(const BenchCase&)>& on_case) {
  std::vector<BenchCase> out;
  auto emit = [&](const std::string& kernel, int64_t M, int64_t N, int64_t K, const Runner& ours,
                  const Runner& base) {
    double ops = 2.0 * M * N * K * 1e-9;
    BenchCase c{kernel, M, N, K, ours.name, base.name, ops / ours.best, ops / base.best, base.best / ours.best};
    if (on_case) on_case(c);
    out.push_back(c);
  };
  Rng rng(1);
  for (int64_t NK : opt.NK)
    for (int64_t M : opt.M) {
      const int64_t N = NK, K = NK;
      std::vector<float> xf(M * K), wf(N * K), y(M * N), scale(N), bias(N);
      std::vector<uint8_t> xq(M * K);
      std::vector<int8_t> wq(N * K);
      for (auto& v : xf) v = rng.uniform() - 0.5f;
      for (auto& v : wf) v = rng.uniform() - 0.5f;
      for (auto& v : xq) v = (uint8_t)rng.below(256);
      for (auto& v : wq) v = (int8_t)(rng.below(255) - 127);
      for (int64_t o = 0; o < N; o++) scale[o] = 1e-3f, bias[o] = 0.1f;
      Int8Packed wp = pack_int8({wq.data(), N, K, scale.data(), bias.data()});
      const int32_t z = 128;
      // K4 at HQQ's recommended b4g64 (methods.md §5.8).
      std::vector<uint8_t> q4(N * K);
      for (auto& v : q4) v = (uint8_t)rng.below(16);
      std::vector<uint16_t> s4(N * K / 64, f32_to_f16(0.01f)), z4(N * K / 64, f32_to_f16(7.5f));
      LowbitPacked w4 = pack_lowbit({q4.data(), N, K, 4, 64, s4.data(), z4.data(), bias.data()});

      std::vector<Runner> rs;
      rs.push_back({M == 1 ? "openblas sgemv" : "openblas sgemm", [&] {
                      if (M == 1)
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, wf.data(), K, xf.data(), 1, 0.0f,
                                    y.data(), 1);
                      else
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, xf.data(), K, wf.data(),
                                    K, 0.0f, y.data(), N);
                    }});
#ifdef TQ_HAVE_DNNL
      auto dnnl = std::make_unique<DnnlInt8>(xq.data(), wq.data(), scale.data(), bias.data(), y.data(), M, N, K, z);
      rs.push_back({"onednn int8", [&] { dnnl->run(); }});
#endif
      const size_t first_ours = rs.size();
      for (Isa isa : fast_paths(opt.scalar))
        rs.push_back({isa_name(isa), [&, isa] { gemm_int8(acts_u8(xq.data(), M, K, 0.02f, z), wp, y.data(), N, isa); }});
      const size_t first_w4 = rs.size();
      for (Isa isa : fast_paths(opt.scalar))
        if (isa != Isa::amx)  // K4 runs the AVX-512 kernel on AMX machines
          rs.push_back({isa_name(isa), [&, isa] { gemm_lowbit(xf.data(), M, K, w4, y.data(), N, isa); }});
      time_runners(rs, opt);
      for (size_t i = first_ours; i < first_w4; i++) {
        emit("int8 K1", M, N, K, rs[i], rs[0]);
        if (first_ours > 1) emit("int8 K1", M, N, K, rs[i], rs[1]);
      }
      for (size_t i = first_w4; i < rs.size(); i++) emit("w4g64 K4", M, N, K, rs[i], rs[0]);
    }
  return out;
}

}  // namespace tq
