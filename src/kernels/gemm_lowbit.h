// Low-bit weights with per-group parameters, kernel K4 of docs/methods.md §0.4, in two
// forms that read the same packed weight:
//
//   K4      float activations (weight-only models; decoding):
//             y[t,o] = Σ_g s_{o,g} · Σ_{c∈g} (q_{o,c} − z_{o,g}) · x[t,c] + b_o
//           (with a min m instead of z: Σ_g (s·Σ_{c∈g} q·x + m·Σ_{c∈g} x) + b_o)
//   K4-a8   int8 activations with a step per row, x[t,c] ≈ α_t·a[t,c] (a site
//           quantized per token, or per tensor, symmetrically), on integer dot
//           products (VNNI, AMX):
//             A_{t,o,g} = Σ_{c∈g} q_{o,c}·a[t,c]   S_{t,g} = Σ_{c∈g} a[t,c]   (int32, exact)
//             P = Σ_g in order:  P ← fma(m_{o,g}, S_{t,g}, fma(s_{o,g}, A_{t,o,g}, P))
//             y[t,o] = fma(α_t, P, b_o)
//           with m = −(s·z) (rounded once) or the stored min.
//
// bits 2..8; codes q in [0, 2^bits); groups of `group` consecutive inputs (a
// multiple of 32; the last group of a row may be shorter). Per group an fp16
// scale s and an fp16 zero point z, as tquant stores them (docs/methods.md §3.2), or,
// for ggml's Q4_1/Q5_1, an fp16 min m with x = s·q + m (LowbitWeights::min).
// pack_ggml() packs the legacy ggml blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) into
// this form exactly.
//
// A runtime packs each weight once and calls either form per batch of rows.
// Within a form every path computes the same operations in the same order, so
// all paths give the same bits.
#pragma once
#include <cstdint>
#include <string>
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
  const uint16_t* zero = nullptr;   // fp16, same shape: z, or m when `min`
  const float* bias = nullptr;      // b_o, or null
  bool min = false;                 // zero holds the min m (x = s·q + m), not z (x = s·(q − z))
  int64_t groups() const { return group > 0 ? (C + group - 1) / group : 0; }
};

// Packed: outputs in tiles of 64 lanes; per tile and per block of 32 inputs,
// `bits` words of 32 bits per lane (lane = output). A code is split into planes
// of 8, or of 4, 2 and 1 bits (the binary digits of bits: 5 = 4 + 1, 7 = 4 + 2 + 1),
// low bits first; a plane of p bits fills p words, 32/p codes each, input j of
// a word at bits [p·j, p·j + p). Scale and zero (or min) stay fp16, per tile and
// group as 64 lanes. Padding is zero.
struct LowbitPacked {
  static constexpr int kTile = 64, kBlock = 32;
  int64_t O = 0, C = 0, Cp = 0, groups = 0;  // Cp: C padded to a block
  int bits = 0, group = 0;
  bool min = false;                   // zero holds mins (LowbitWeights::min)
  avector<uint32_t> words;            // tiles × Cp/32 blocks × bits words × 64 lanes
  avector<uint16_t> scale, zero;      // tiles × groups × 64
  std::vector<float> bias;            // padded to the tiles; zero when absent
  int64_t tiles() const { return (O + kTile - 1) / kTile; }
  size_t bytes() const { return words.size() * 4 + scale.size() * 2 + zero.size() * 2 + bias.size() * 4; }
};

LowbitPacked pack_lowbit(const LowbitWeights& w);
// An O × C weight stored as ggml blocks (rows of C/32 blocks of `type`: Q4_0, Q4_1,
// Q5_0, Q5_1 or Q8_0; C a multiple of 32), exactly: Q4_0 and Q5_0 as zero points
// 8 and 16, Q8_0's codes + 128 with zero point 128, the _1 types with their min.
LowbitPacked pack_ggml(uint32_t type, const uint8_t* data, int64_t O, int64_t C, const float* bias = nullptr);

// K4: y (M × O, stride ldy) from x (M × C, stride ldx).
void gemm_lowbit(const float* x, int64_t M, int64_t ldx, const LowbitPacked& w, float* y, int64_t ldy,
                 Isa isa = Isa::automatic);
// K4-a8: y from the codes a (M × C, stride lda) and their steps α (one per row).
void gemm_lowbit_a8(const int8_t* a, const float* step, int64_t M, int64_t lda, const LowbitPacked& w, float* y,
                    int64_t ldy, Isa isa = Isa::automatic);

// The path gemm_lowbit (a8: gemm_lowbit_a8) takes for w on a resolved isa, for reports.
std::string gemm_lowbit_path(const LowbitPacked& w, Isa isa, bool a8);

// Plain references on the unpacked weight: the formulas above as loops.
void gemm_lowbit_ref(const float* x, int64_t M, int64_t ldx, const LowbitWeights& w, float* y, int64_t ldy);
void gemm_lowbit_a8_ref(const int8_t* a, const float* step, int64_t M, int64_t lda, const LowbitWeights& w, float* y,
                        int64_t ldy);

}  // namespace tq
