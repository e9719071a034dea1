// Packing, checks, activation preparation and dispatch of the int8 GEMM;
// the portable scalar path on the packed layout.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/gemm_int8_impl.h"

namespace tq {

using detail::Int8Job;

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

Int8Packed pack_int8(const Int8Weights& w) {
  TQ_CHECK_INPUT(w.O >= 0 && w.C >= 0, "pack_int8: bad shape {}x{}", w.O, w.C);
  TQ_CHECK_INPUT((w.q && w.scale) || w.O * w.C == 0, "pack_int8: codes and scales are required");
  Int8Packed p;
  p.O = w.O;
  p.C = w.C;
  p.Cp = round_up(w.C, Int8Packed::kDepthAlign);
  const int64_t np = p.panels(), Op = np * Int8Packed::kPanel;
  p.data.assign(np * (p.Cp / 4) * 256, 0);
  p.row_sum.assign(Op, 0);
  p.scale.assign(Op, 0.0f);
  p.bias.assign(Op, 0.0f);
  if (w.zero) p.zero.assign(Op, 0);
  int32_t range = 0;
  for (int64_t o = 0; o < w.O; o++) {
    const int8_t* row = w.q + o * w.C;
    int32_t zw = w.zero ? w.zero[o] : 0, sum = 0;
    for (int64_t c = 0; c < w.C; c++) {
      const_cast<int8_t*>(p.block(o / 16, c / 64))[(c % 64 / 4) * 64 + (o % 16) * 4 + c % 4] = row[c];
      sum += row[c];
      range = std::max(range, std::abs((int32_t)row[c] - zw));
    }
    p.row_sum[o] = sum;
    p.scale[o] = w.scale[o];
    if (w.bias) p.bias[o] = w.bias[o];
    if (w.zero) p.zero[o] = zw;
  }
  p.wq_range = range;
  return p;
}

namespace detail {

// Rejects a call whose exact sums might not fit int32 (see gemm_int8.h).
void check_int8_bound(const Int8Acts& a, int64_t C, int32_t wq_range) {
  int64_t amax = a.is_signed ? 128 : std::max<int64_t>(std::abs((int64_t)a.zero), std::abs(255 - (int64_t)a.zero));
  if ((double)C * wq_range * amax >= 2147483648.0)
    bad_input("int8 GEMM: C = {} with max|Wq − zw| = {} and max|q − z| = {} can overflow the exact int32 sums", C,
              wq_range, amax);
}

void check_int8_call(const Int8Acts& a, int64_t O, int64_t C, int64_t ldy) {
  TQ_CHECK_INPUT(a.M >= 0 && (a.q || a.M == 0) && a.ld >= C, "int8 GEMM: bad activations (M {}, ld {}, C {})", a.M,
                 a.ld, C);
  TQ_CHECK_INPUT(ldy >= O, "int8 GEMM: output stride {} < {} outputs", ldy, O);
  TQ_CHECK_INPUT(!a.is_signed || a.zero == 0, "int8 GEMM: s8 activations are symmetric (zero point {})", a.zero);
}

}  // namespace detail

// dst[0..n) = src ^ flip, then zeros up to width.
static void copy_codes(uint8_t* dst, const uint8_t* src, int64_t n, int64_t width, uint8_t flip) {
  if (n == 64) std::memcpy(dst, src, 64);  // the common case, as vector moves
  else if (n > 0) std::memcpy(dst, src, n);  // (src may be null when there is nothing to copy)
  if (flip)
    for (int64_t i = 0; i < n; i++) dst[i] ^= flip;
  if (width > n) std::memset(dst + n, 0, width - n);
}

static void run_int8(const Int8Acts& a, const Int8Packed& w, float* y, int32_t* d, int64_t ldy, Isa isa) {
  isa = resolve_isa(isa);
  detail::check_int8_call(a, w.O, w.C, ldy);
  detail::check_int8_bound(a, w.C, w.wq_range);
  if (a.M == 0 || w.O == 0) return;
  const int64_t M = a.M, C = w.C, depth = w.Cp;
  // s8 codes become u8 by +128, so every path runs u8 × s8 with zero point z + 128.
  const int32_t z = a.is_signed ? 128 : a.zero;
  const uint8_t flip = a.is_signed ? 0x80 : 0;
  const bool amx = isa == Isa::amx && M >= detail::kAmxMinRows;
  const uint8_t* src = (const uint8_t*)a.q;
  const uint8_t* act = src;
  int64_t lda = a.ld;
  if (a.is_signed || depth != C || amx) {
    // The codes as u8 with the depth padded with zeros: row-major for the vector
    // paths, AMX tiles (16 rows × 64 inputs, whole 32-row blocks) for AMX. The
    // buffer is reused per calling thread: a fresh one per call costs page faults.
    static thread_local avector<uint8_t> scratch;
    const int64_t rows = amx ? round_up(M, 32) : M;
    scratch.resize(std::max<size_t>(scratch.size(), rows * depth));
    uint8_t* buf = scratch.data();
#pragma omp parallel for schedule(static) if (M * C > (1 << 16))
    for (int64_t t = 0; t < rows; t++) {
      const int64_t n = t < M ? C : 0;
      const uint8_t* row = src + std::min(t, M - 1) * a.ld;
      if (amx) {
        for (int64_t c0 = 0; c0 < depth; c0 += 64) {
          uint8_t* dst = buf + detail::amx_act_offset(t, c0, depth);
          copy_codes(dst, row + c0, std::clamp<int64_t>(n - c0, 0, 64), 64, flip);
        }
      } else {
        copy_codes(buf + t * depth, row, C, depth, flip);
      }
    }
    act = buf;
    lda = depth;
  }
  static thread_local std::vector<int32_t> row_sum, corr;  // the calling thread's: taken before the kernels run
  row_sum.resize(w.zero.empty() ? 0 : M);
  for (int64_t t = 0; t < (int64_t)row_sum.size(); t++) {
    int32_t s = 0;
    for (int64_t c = 0; c < C; c++) s += src[t * a.ld + c] ^ flip;
    row_sum[t] = s;
  }
  const int64_t Op = w.panels() * Int8Packed::kPanel;
  corr.assign(Op, 0);
  for (int64_t o = 0; o < w.O; o++) {
    int64_t v = -(int64_t)z * w.row_sum[o] + (w.zero.empty() ? 0 : C * z * (int64_t)w.zero[o]);
    corr[o] = (int32_t)(uint32_t)(uint64_t)v;  // mod 2^32: the true sums fit, so wrapping terms are exact
  }
  Int8Job j;
  j.a = act;
  j.M = M;
  j.lda = lda;
  j.depth = depth;
  j.tiled = amx;
  j.w = &w;
  j.corr = corr.data();
  j.zw = w.zero.empty() ? nullptr : w.zero.data();
  j.row_sum = row_sum.empty() ? nullptr : row_sum.data();
  j.alpha = a.row_step;
  j.alpha0 = a.step;
  j.y = y;
  j.d = d;
  j.ldy = ldy;
  switch (isa) {
    case Isa::amx:
    case Isa::avx512: amx ? detail::gemm_int8_amx(j) : detail::gemm_int8_avx512(j); break;
    case Isa::avx2: detail::gemm_int8_avx2(j); break;
    default: detail::gemm_int8_scalar(j); break;
  }
}

std::string gemm_int8_path(Isa isa) {
  return isa == Isa::amx ? fmt::format("amx (avx512 below {} rows)", detail::kAmxMinRows) : isa_name(isa);
}

void gemm_int8(const Int8Acts& a, const Int8Packed& w, float* y, int64_t ldy, Isa isa) {
  TQ_CHECK_INPUT(y || a.M * w.O == 0, "gemm_int8: no output");
  run_int8(a, w, y, nullptr, ldy, isa);
}

void gemm_int8_s32(const Int8Acts& a, const Int8Packed& w, int32_t* d, int64_t ldd, Isa isa) {
  TQ_CHECK_INPUT(d || a.M * w.O == 0, "gemm_int8_s32: no output");
  run_int8(a, w, nullptr, d, ldd, isa);
}

namespace detail {

// Finishes output (t, o) from its raw u8 × s8 sum.
static inline void finish(const Int8Job& j, int64_t t, int64_t o, int32_t acc) {
  uint32_t v = (uint32_t)acc + (uint32_t)j.corr[o];
  if (j.zw) v -= (uint32_t)j.zw[o] * (uint32_t)j.row_sum[t];
  int32_t dv = (int32_t)v;
  if (j.d) {
    j.d[t * j.ldy + o] = dv;
  } else {
    float al = j.alpha ? j.alpha[t] : j.alpha0;
    j.y[t * j.ldy + o] = int8_epilogue(dv, al, j.w->scale[o], j.w->bias[o]);
  }
}

// Portable path: one row by one panel, the 64 sums kept in an array.
void gemm_int8_scalar(const Int8Job& j) {
  const Int8Packed& w = *j.w;
  const int64_t np = w.panels(), nq = j.depth / 4;
#pragma omp parallel for schedule(static) if (j.M * w.O * j.depth > kParallelWork)
  for (int64_t p = 0; p < np; p++) {
    const int64_t n = std::min<int64_t>(64, w.O - p * 64);
    for (int64_t t = 0; t < j.M; t++) {
      const uint8_t* a = j.a + t * j.lda;
      int32_t acc[64] = {};
      for (int64_t q = 0; q < nq; q++)
        for (int v = 0; v < 4; v++) {
          const int8_t* bq = w.block(4 * p + v, q / 16) + (q % 16) * 64;
          for (int i = 0; i < 64; i++) acc[v * 16 + i / 4] += (int32_t)a[4 * q + i % 4] * bq[i];
        }
      for (int64_t o = 0; o < n; o++) finish(j, t, p * 64 + o, acc[o]);
    }
  }
}

}  // namespace detail

void quantize_per_token(const float* x, int64_t M, int64_t C, int64_t ldx, int8_t* q, int64_t ldq, float* s,
                        Isa isa) {
  TQ_CHECK_INPUT(M >= 0 && C >= 0 && ldx >= C && ldq >= C, "quantize_per_token: bad shape");
  switch (resolve_isa(isa)) {
    case Isa::amx:
    case Isa::avx512: detail::quantize_per_token_avx512(x, M, C, ldx, q, ldq, s); break;
    case Isa::avx2: detail::quantize_per_token_avx2(x, M, C, ldx, q, ldq, s); break;
    default: quantize_per_token_ref(x, M, C, ldx, q, ldq, s); break;
  }
}

}  // namespace tq
