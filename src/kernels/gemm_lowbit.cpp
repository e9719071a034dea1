// K4: packing, the activation preparation every path shares, the threaded
// driver and the portable scalar tile.
#include <omp.h>

#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/gemm_lowbit_impl.h"
#include "kernels/work_split.h"

namespace tq {

using namespace detail;

LowbitPacked pack_lowbit(const LowbitWeights& w) {
  TQ_CHECK_INPUT(w.bits == 2 || w.bits == 3 || w.bits == 4 || w.bits == 8, "pack_lowbit: {} bits (expected 2, 3, 4 or 8)",
                 w.bits);
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

namespace {

// The scalar tile: the SIMD kernels' operations, one lane at a time.
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
        yv = __builtin_fmaf(s, __builtin_fmaf(-z, x.xsum[r * w.groups + g], acc), yv);
      }
      y[r * ldy + tile * 64 + l] = yv + w.bias[tile * 64 + l];
    }
}

}  // namespace

LowbitTileFn lowbit_tile_scalar(int) { return tile_scalar; }

}  // namespace detail

void gemm_lowbit(const float* x, int64_t M, int64_t ldx, const LowbitPacked& w, float* y, int64_t ldy, Isa isa) {
  isa = resolve_isa(isa);
  TQ_CHECK_INPUT(M >= 0 && ldx >= w.C && ldy >= w.O, "gemm_lowbit: bad shapes (M {}, ldx {}, ldy {})", M, ldx, ldy);
  TQ_CHECK_INPUT((x && y) || M * w.O == 0, "gemm_lowbit: null input or output");
  if (M == 0 || w.O == 0) return;
  LowbitTileFn fn = isa == Isa::scalar ? lowbit_tile_scalar(w.bits)
                    : isa == Isa::avx2 ? lowbit_tile_avx2(w.bits)
                                       : lowbit_tile_avx512(w.bits);  // AMX has no use for f32 activations
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

}  // namespace tq
