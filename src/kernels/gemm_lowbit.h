// Weight-only low-bit GEMV/GEMM, kernel K4 of methods.md §0.4:
//
//   y[t,o] = Σ_g s_{o,g} · Σ_{c∈g} (q_{o,c} − z_{o,g}) · x[t,c] + b_o
//
// bits ∈ {2, 3, 4, 8}; codes q in [0, 2^bits); groups of `group` consecutive
// inputs (a multiple of 32; the last group of a row may be shorter); scale
// and zero per group in fp16, as tquant stores them (methods.md §3.2), so
// bits per weight = bits + 32/group. Activations stay f32.
//
// A runtime packs each weight once (pack_lowbit) and calls gemm_lowbit per
// batch of rows (M = 1 for decoding). Every path computes the same float
// operations in the same order, so all paths give the same bits.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/aligned.h"
#include "kernels/cpu.h"

namespace tq {

// A low-bit weight as a quantizer hands it over.
struct LowbitWeights {
  const uint8_t* q = nullptr;  // O × C codes, row-major, one per byte
  int64_t O = 0, C = 0;
  int bits = 4, group = 64;
  const uint16_t* scale = nullptr;  // fp16, O × groups(C) row-major
  const uint16_t* zero = nullptr;   // fp16, same shape
  const float* bias = nullptr;      // b_o, or null
  int64_t groups() const { return group > 0 ? (C + group - 1) / group : 0; }
};

// Packed: outputs in tiles of 64 lanes; per tile and per block of 32 inputs,
// `bits` words of 32 bits per lane (lane = output). A code of b bits is split
// into planes of 1, 2, 4 or 8 bits (3 = 2 + 1); a plane of p bits fills p words,
// 32/p codes each, input j of a word at bits [p·j, p·j + p). Scale and zero
// stay fp16, per tile and group as 64 lanes. Padding is zero.
struct LowbitPacked {
  static constexpr int kTile = 64, kBlock = 32;
  int64_t O = 0, C = 0, Cp = 0, groups = 0;  // Cp: C padded to a block
  int bits = 0, group = 0;
  avector<uint32_t> words;            // tiles × Cp/32 blocks × bits words × 64 lanes
  avector<uint16_t> scale, zero;      // tiles × groups × 64
  std::vector<float> bias;            // padded to the tiles; zero when absent
  int64_t tiles() const { return (O + kTile - 1) / kTile; }
  size_t bytes() const { return words.size() * 4 + scale.size() * 2 + zero.size() * 2 + bias.size() * 4; }
};

LowbitPacked pack_lowbit(const LowbitWeights& w);

// y (M × O, stride ldy) from x (M × C, stride ldx).
void gemm_lowbit(const float* x, int64_t M, int64_t ldx, const LowbitPacked& w, float* y, int64_t ldy,
                 Isa isa = Isa::automatic);

// The plain reference on the unpacked weight: the formula above, in float.
void gemm_lowbit_ref(const float* x, int64_t M, int64_t ldx, const LowbitWeights& w, float* y, int64_t ldy);

}  // namespace tq
