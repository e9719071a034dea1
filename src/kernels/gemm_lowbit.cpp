// K4 and K4-a8: packing (from codes or ggml blocks), the activation
// preparation every path shares, the threaded drivers and the portable scalar
// tiles.
#include <fmt/format.h>
#include <omp.h>

#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "io/ggml_quants.h"
#include "io/ggml_types.h"
#include "kernels/gemm_lowbit_impl.h"
#include "kernels/work_split.h"

namespace tq {

using namespace detail;

// AMX's unpacked digits pay off from this many rows; below, VNNI runs (same bits).
constexpr int64_t kAmxA8MinRows = 32;

LowbitPacked pack_lowbit(const LowbitWeights& w) {
  TQ_CHECK_INPUT(w.bits >= 2 && w.bits <= 8, "pack_lowbit: {} bits (expected 2 to 8)", w.bits);
  TQ_CHECK_INPUT(w.group > 0 && w.group % LowbitPacked::kBlock == 0, "pack_lowbit: group {} is not a multiple of 32",
                 w.group);
  TQ_CHECK_INPUT(w.O >= 0 && w.C >= 0, "pack_lowbit: bad shape {}x{}", w.O, w.C);
  TQ_CHECK_INPUT((w.q && w.scale && w.zero) || w.O * w.C == 0, "pack_lowbit: codes, scales and zeros are required");
  LowbitPacked p;
  p.O = w.O;
  p.C = w.C;
  p.bits = w.bits;
  p.group = w.group;
  p.groups = w.groups();
  p.min = w.min;
  p.Cp = (w.C + 31) / 32 * 32;
  const int64_t nt = p.tiles(), nblk = p.Cp / 32;
  p.words.assign(nt * nblk * w.bits * 64, 0);
  p.scale.assign(nt * p.groups * 64, 0);
  p.zero.assign(nt * p.groups * 64, 0);
  p.bias.assign(nt * 64, 0.0f);
  const uint32_t limit = 1u << w.bits;
  for (int64_t o = 0; o < w.O; o++) {
    const int64_t tile = o / 64, lane = o % 64;
    for (int64_t c = 0; c < w.C; c++) {
      uint32_t code = w.q[o * w.C + c];
      if (code >= limit) bad_input("pack_lowbit: code {} at ({}, {}) does not fit {} bits", code, o, c, w.bits);
      uint32_t* block = p.words.data() + (tile * nblk + c / 32) * w.bits * 64;
      for (int i = 0; i < plane_count(w.bits); i++) {
        Plane pl = plane_of(w.bits, i);
        const int per_word = 32 / pl.width, slot = (int)(c % 32);
        uint32_t v = (code >> pl.shift) & ((1u << pl.width) - 1);
        block[(pl.word + slot / per_word) * 64 + lane] |= v << (pl.width * (slot % per_word));
      }
    }
    for (int64_t g = 0; g < p.groups; g++) {
      p.scale[(tile * p.groups + g) * 64 + lane] = w.scale[o * p.groups + g];
      p.zero[(tile * p.groups + g) * 64 + lane] = w.zero[o * p.groups + g];
    }
    if (w.bias) p.bias[o] = w.bias[o];
  }
  return p;
}

LowbitPacked pack_ggml(uint32_t type, const uint8_t* data, int64_t O, int64_t C, const float* bias) {
  const GgmlTypeInfo* ti = ggml_type_info(type);
  const bool q8 = type == ggml_q8_0, with_min = type == ggml_q4_1 || type == ggml_q5_1;
  TQ_CHECK_INPUT(ti && (q8 || with_min || type == ggml_q4_0 || type == ggml_q5_0),
                 "pack_ggml: type {} is not a legacy block type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)", ti ? ti->name : "?");
  TQ_CHECK_INPUT(O >= 0 && C >= 0 && C % 32 == 0 && (data || O * C == 0), "pack_ggml: bad {}x{} {} weight", O, C,
                 ti->name);
  const int bits = q8 ? 8 : type == ggml_q4_0 || type == ggml_q4_1 ? 4 : 5;
  const int offset = q8 ? 128 : 0;  // Q8_0's codes −128..127 become 0..255 with zero point 128
  const uint16_t zero = f32_to_f16(q8 ? 128.0f : type == ggml_q4_0 ? 8.0f : 16.0f);
  const int64_t groups = C / 32;
  std::vector<uint8_t> q(O * C);
  std::vector<uint16_t> scale(O * groups), z(O * groups);
  int32_t codes[32];
  for (int64_t o = 0; o < O; o++)
    for (int64_t g = 0; g < groups; g++) {
      uint16_t d, m;
      unpack_legacy_block(type, data + (o * groups + g) * ti->bytes, codes, d, m);
      for (int i = 0; i < 32; i++) q[o * C + g * 32 + i] = (uint8_t)(codes[i] + offset);
      scale[o * groups + g] = d;
      z[o * groups + g] = with_min ? m : zero;
    }
  return pack_lowbit({q.data(), O, C, bits, 32, scale.data(), z.data(), bias, with_min});
}

namespace detail {

void lowbit_prepare(const float* x, int64_t ldx, int rows, const LowbitPacked& w, float* xs, float* xsum) {
  const int np = plane_count(w.bits);
  for (int r = 0; r < rows; r++) {
    const float* xr = x + r * ldx;
    for (int i = 0; i < np; i++) {
      Plane pl = plane_of(w.bits, i);
      const int per_word = 32 / pl.width;
      float factor[32];
      for (int c = 0; c < 32; c++) {
        const int slot = c % per_word;
        factor[c] = std::ldexp(1.0f, pl.shift - (slot == per_word - 1 ? 0 : pl.width * slot));
      }
      float* dst = xs + (r * np + i) * w.Cp;
      for (int64_t c = 0; c < w.C; c++) dst[c] = xr[c] * factor[c % 32];
      for (int64_t c = w.C; c < w.Cp; c++) dst[c] = 0.0f;
    }
    for (int64_t g = 0; g < w.groups; g++) {
      float s = 0;
      for (int64_t c = g * w.group; c < std::min(w.C, (g + 1) * w.group); c++) s += xr[c];
      xsum[r * w.groups + g] = s;
    }
  }
}

int a8_slot(int width, int j) {
  const int per_word = 32 / width, per_byte = 8 / width, k = j / per_word, slot = j % per_word;
  return 4 * (k * per_byte + slot % per_byte) + slot / per_byte;
}

namespace {

// The scalar K4 tile: the SIMD kernels' operations, one lane at a time.
void tile_scalar(const LowbitPacked& w, int64_t tile, const LowbitRows& x, float* y, int64_t ldy) {
  const int np = plane_count(w.bits);
  const int64_t nblk = w.Cp / 32, lanes = std::min<int64_t>(64, w.O - tile * 64);
  for (int r = 0; r < x.rows; r++)
    for (int64_t l = 0; l < lanes; l++) {
      float yv = 0;
      for (int64_t g = 0; g < w.groups; g++) {
        float acc = 0;
        for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++) {
          const uint32_t* block = w.words.data() + (tile * nblk + cb) * w.bits * 64;
          for (int i = 0; i < np; i++) {
            Plane pl = plane_of(w.bits, i);
            const int per_word = 32 / pl.width;
            const float* xs = x.xs + (r * np + i) * w.Cp + cb * 32;
            for (int k = 0; k < pl.width; k++) {
              const uint32_t word = block[(pl.word + k) * 64 + l];
              for (int j = 0; j < per_word; j++) {
                uint32_t v = j == per_word - 1 ? word >> (pl.width * j)
                                                : word & (((1u << pl.width) - 1) << (pl.width * j));
                acc = __builtin_fmaf((float)(int32_t)v, xs[k * per_word + j], acc);
              }
            }
          }
        }
        const float s = f16_to_f32(w.scale[(tile * w.groups + g) * 64 + l]);
        const float z = f16_to_f32(w.zero[(tile * w.groups + g) * 64 + l]);
        const float xg = x.xsum[r * w.groups + g];
        yv = w.min ? __builtin_fmaf(z, xg, __builtin_fmaf(s, acc, yv)) : __builtin_fmaf(s, __builtin_fmaf(-z, xg, acc), yv);
      }
      y[r * ldy + tile * 64 + l] = yv + w.bias[tile * 64 + l];
    }
}

// The scalar a8 tile: per lane, the int32 sums of every plane byte against its
// activation byte, then the float epilogue of gemm_lowbit.h.
void a8_tile_scalar(const LowbitPacked& w, int64_t tile, const LowbitA8Rows& x, float* y, int64_t ldy) {
  const int np = plane_count(w.bits);
  const int64_t nblk = w.Cp / 32, lanes = std::min<int64_t>(64, w.O - tile * 64), row_bytes = a8_row_bytes(w);
  for (int r = 0; r < x.rows; r++)
    for (int64_t l = 0; l < lanes; l++) {
      float p = 0;
      for (int64_t g = 0; g < w.groups; g++) {
        int32_t acc = 0;
        for (int64_t cb = g * w.group / 32; cb < std::min(nblk, (g + 1) * w.group / 32); cb++) {
          const uint32_t* block = w.words.data() + (tile * nblk + cb) * w.bits * 64;
          for (int i = 0; i < np; i++) {
            const Plane pl = plane_of(w.bits, i);
            const int per_byte = 8 / pl.width;
            const uint32_t mask = (0x01010101u * ((1u << pl.width) - 1)) << pl.shift;
            const int8_t* a = x.a + r * row_bytes + (cb * np + i) * 32;
            for (int k = 0; k < pl.width; k++) {
              const uint32_t word = block[(pl.word + k) * 64 + l];
              for (int s = 0; s < per_byte; s++) {
                const int sh = pl.width * s - pl.shift;
                const uint32_t e = (sh >= 0 ? word >> sh : word << -sh) & mask;
                for (int b = 0; b < 4; b++) acc += (int32_t)((e >> (8 * b)) & 0xFF) * a[4 * (k * per_byte + s) + b];
              }
            }
          }
        }
        const float s = f16_to_f32(w.scale[(tile * w.groups + g) * 64 + l]);
        const float z = f16_to_f32(w.zero[(tile * w.groups + g) * 64 + l]);
        const float m = w.min ? z : -(s * z);
        p = __builtin_fmaf(m, x.sum[r * w.groups + g], __builtin_fmaf(s, (float)acc, p));
      }
      y[r * ldy + tile * 64 + l] = __builtin_fmaf(x.step[r], p, w.bias[tile * 64 + l]);
    }
}

}  // namespace

LowbitTileFn lowbit_tile_scalar(int, bool) { return tile_scalar; }
LowbitA8TileFn lowbit_a8_tile_scalar(int, bool) { return a8_tile_scalar; }

}  // namespace detail

std::string gemm_lowbit_path(const LowbitPacked& w, Isa isa, bool a8) {
  if (isa != Isa::amx) return a8 && isa == Isa::avx512 ? "avx512 vnni" : isa_name(isa);
  if (!a8) return "avx512";
  return lowbit_a8_amx_fits(w) ? fmt::format("amx (avx512 vnni below {} rows)", kAmxA8MinRows)
                               : "avx512 vnni (groups too short for amx tiles)";
}

void gemm_lowbit(const float* x, int64_t M, int64_t ldx, const LowbitPacked& w, float* y, int64_t ldy, Isa isa) {
  isa = resolve_isa(isa);
  TQ_CHECK_INPUT(M >= 0 && ldx >= w.C && ldy >= w.O, "gemm_lowbit: bad shapes (M {}, ldx {}, ldy {})", M, ldx, ldy);
  TQ_CHECK_INPUT((x && y) || M * w.O == 0, "gemm_lowbit: null input or output");
  if (M == 0 || w.O == 0) return;
  LowbitTileFn fn = isa == Isa::scalar ? lowbit_tile_scalar(w.bits, w.min)
                    : isa == Isa::avx2 ? lowbit_tile_avx2(w.bits, w.min)
                                       : lowbit_tile_avx512(w.bits, w.min);  // AMX has no use for f32 activations
  const int np = plane_count(w.bits);
#pragma omp parallel if (M * w.O * w.Cp > kParallelWork)
  {
    int64_t begin, end;
    split_range(w.tiles(), omp_get_thread_num(), omp_get_num_threads(), begin, end);
    if (begin < end) {
      // Each thread prepares the rows it needs: O(rows·C), against O(rows·C·64) per tile.
      avector<float> xs(kLowbitRows * np * w.Cp), xsum(kLowbitRows * w.groups);
      for (int64_t t0 = 0; t0 < M; t0 += kLowbitRows) {
        const int rows = (int)std::min<int64_t>(kLowbitRows, M - t0);
        lowbit_prepare(x + t0 * ldx, ldx, rows, w, xs.data(), xsum.data());
        for (int64_t tile = begin; tile < end; tile++)
          fn(w, tile, {xs.data(), xsum.data(), rows}, y + t0 * ldy, ldy);
      }
    }
  }
}

void gemm_lowbit_a8(const int8_t* a, const float* step, int64_t M, int64_t lda, const LowbitPacked& w, float* y,
                    int64_t ldy, Isa isa) {
  isa = resolve_isa(isa);
  TQ_CHECK_INPUT(M >= 0 && lda >= w.C && ldy >= w.O, "gemm_lowbit_a8: bad shapes (M {}, lda {}, ldy {})", M, lda, ldy);
  TQ_CHECK_INPUT((a && step && y) || M * w.O == 0, "gemm_lowbit_a8: null input or output");
  // The exact int32 sums of a group: |A| ≤ group·255·128.
  TQ_CHECK_INPUT(std::min<int64_t>(w.group, w.C) <= 65793, "gemm_lowbit_a8: group {} can overflow int32 sums", w.group);
  if (M == 0 || w.O == 0) return;
  LowbitA8TileFn fn = isa == Isa::scalar ? lowbit_a8_tile_scalar(w.bits, w.min)
                      : isa == Isa::avx2 ? lowbit_a8_tile_avx2(w.bits, w.min)
                                         : lowbit_a8_tile_avx512(w.bits, w.min);
  // The codes in the plane order of every path, and the group sums, once per call
  // into buffers each calling thread reuses.
  const int np = plane_count(w.bits);
  const int64_t row_bytes = a8_row_bytes(w);
  const bool amx = isa == Isa::amx && M >= kAmxA8MinRows && lowbit_a8_amx_fits(w);
  const int64_t rows = amx ? (M + 31) / 32 * 32 : M;  // AMX reads whole 32-row blocks
  static thread_local avector<int8_t> codes;
  static thread_local std::vector<float> sums;
  codes.resize(std::max<size_t>(codes.size(), rows * row_bytes));
  sums.resize(std::max<size_t>(sums.size(), M * w.groups));
  // The calling thread's buffers: OpenMP workers have thread_locals of their own.
  int8_t* const code_buf = codes.data();
  float* const sum_buf = sums.data();
  std::memset(code_buf + M * row_bytes, 0, (rows - M) * row_bytes);
  int slot[3][32];
  for (int i = 0; i < np; i++)
    for (int j = 0; j < 32; j++) slot[i][j] = a8_slot(plane_of(w.bits, i).width, j);
#pragma omp parallel for schedule(static) if (M * w.C > (1 << 16))
  for (int64_t t = 0; t < M; t++) {
    int8_t* dst = code_buf + t * row_bytes;
    const int8_t* src = a + t * lda;
    for (int64_t cb = 0; cb < w.Cp / 32; cb++)
      for (int i = 0; i < np; i++) {
        int8_t* block = dst + (cb * np + i) * 32;
        for (int j = 0; j < 32; j++) block[slot[i][j]] = cb * 32 + j < w.C ? src[cb * 32 + j] : 0;
      }
    std::memset(dst + w.Cp * np, 0, row_bytes - w.Cp * np);
    for (int64_t g = 0; g < w.groups; g++) {
      int32_t s = 0;
      for (int64_t c = g * w.group; c < std::min(w.C, (g + 1) * w.group); c++) s += src[c];
      sum_buf[t * w.groups + g] = (float)s;
    }
  }
  if (amx) return gemm_lowbit_a8_amx(w, {code_buf, sum_buf, step, (int)M}, y, ldy);
#pragma omp parallel if (M * w.O * w.Cp > kParallelWork)
  {
    int64_t begin, end;
    split_range(w.tiles(), omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t tile = begin; tile < end; tile++)
      for (int64_t t0 = 0; t0 < M; t0 += kLowbitRows) {
        const LowbitA8Rows rows{code_buf + t0 * row_bytes, sum_buf + t0 * w.groups, step + t0,
                                (int)std::min<int64_t>(kLowbitRows, M - t0)};
        fn(w, tile, rows, y + t0 * ldy, ldy);
      }
  }
}

}  // namespace tq
