#include "io/ggml_quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "io/ggml_types.h"

namespace tq {

namespace {

constexpr int QK = 32, QKK = 256;

float rd16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
void wr16(uint8_t* p, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}
float f16r(float v) { return f16_to_f32(f32_to_f16(v)); }
int clampi(float v, int lo, int hi) { return v != v ? lo : v < lo ? lo : v > hi ? hi : (int)v; }

// ---- legacy 32-element blocks: one description, one decoder and packer for all five ----

struct Legacy {
  uint32_t type;
  int bits;
  bool has_min;  // x = d·q + m, else x = d·(q − offset)
  int offset;
};
constexpr Legacy kLegacy[] = {
    {ggml_q4_0, 4, false, 8}, {ggml_q4_1, 4, true, 0}, {ggml_q5_0, 5, false, 16},
    {ggml_q5_1, 5, true, 0},  {ggml_q8_0, 8, false, 0},
};
const Legacy& legacy(uint32_t type) {
  for (auto& l : kLegacy)
    if (l.type == type) return l;
  run_failed("ggml type {} is not a legacy block type", type);
}
int legacy_bytes(const Legacy& l) { return 2 + (l.has_min ? 2 : 0) + (l.bits == 5 ? 4 : 0) + (l.bits == 8 ? 32 : 16); }

// The codes of one block as the decoder reads them, and the f16 bits of d and m (0 without a min).
void unpack_legacy(const Legacy& l, const uint8_t* src, int32_t* codes, uint16_t& d, uint16_t& m) {
  std::memcpy(&d, src, 2);
  m = 0;
  if (l.has_min) std::memcpy(&m, src + 2, 2);
  const uint8_t* p = src + (l.has_min ? 4 : 2);
  uint32_t qh = 0;
  if (l.bits == 5) {
    std::memcpy(&qh, p, 4);
    p += 4;
  }
  for (int i = 0; i < QK; i++)
    codes[i] = l.bits == 8 ? (int)(int8_t)p[i] : ((p[i % 16] >> (4 * (i / 16))) & 0xF) | (int)(((qh >> i) & 1) << 4);
}

void dequantize_legacy(const Legacy& l, const uint8_t* src, float* dst, int64_t n) {
  const int bytes = legacy_bytes(l);
  int32_t q[QK];
  for (int64_t b = 0; b < n / QK; b++, src += bytes, dst += QK) {
    uint16_t dh, mh;
    unpack_legacy(l, src, q, dh, mh);
    const float d = f16_to_f32(dh), m = f16_to_f32(mh);
    for (int i = 0; i < QK; i++) dst[i] = l.has_min ? d * (float)q[i] + m : (float)(q[i] - l.offset) * d;
  }
}

// Writes a legacy block from value codes (stored with the type's offset added).
void pack_legacy(const Legacy& l, const GgmlBlock& blk, uint8_t* out) {
  std::memset(out, 0, legacy_bytes(l));
  wr16(out, blk.d);
  if (l.has_min) wr16(out + 2, blk.m);
  uint8_t* p = out + (l.has_min ? 4 : 2);
  if (l.bits == 5) {
    uint32_t qh = 0;
    for (int i = 0; i < QK; i++) qh |= (uint32_t)(((blk.q[i] + l.offset) >> 4) & 1) << i;
    std::memcpy(p, &qh, 4);
    p += 4;
  }
  for (int i = 0; i < QK; i++) {
    int u = blk.q[i] + l.offset;
    if (l.bits == 8) p[i] = (uint8_t)(int8_t)u;
    else p[i % 16] |= (uint8_t)((u & 0xF) << (4 * (i / 16)));
  }
}

// Reference encoder: affine types span [min, max]; offset types put the value of largest
// magnitude on the extreme code; Q8_0 is symmetric in ±127. Codes use the f16-rounded d, m.
void quantize_legacy(const Legacy& l, const float* src, uint8_t* dst, int64_t n) {
  const int bytes = legacy_bytes(l), qa = (1 << l.bits) - 1;
  GgmlBlock blk;
  int* q = blk.q;
  for (int64_t b = 0; b < n / QK; b++, src += QK, dst += bytes) {
    float d = 0, m = 0;
    if (l.has_min) {
      float mn = *std::min_element(src, src + QK), mx = *std::max_element(src, src + QK);
      d = f16r((mx - mn) / qa);
      m = f16r(mn);
      for (int i = 0; i < QK; i++) q[i] = d > 0 ? clampi(std::rint((src[i] - m) / d), 0, qa) : 0;
    } else if (l.bits == 8) {
      float amax = 0;
      for (int i = 0; i < QK; i++) amax = std::max(amax, std::fabs(src[i]));
      d = f16r(amax / 127);
      for (int i = 0; i < QK; i++) q[i] = d > 0 ? clampi(std::rint(src[i] / d), -128, 127) : 0;
    } else {
      float v = 0;
      for (int i = 0; i < QK; i++)
        if (std::fabs(src[i]) > std::fabs(v)) v = src[i];
      d = f16r(v / -(float)l.offset);
      for (int i = 0; i < QK; i++) q[i] = d != 0 ? clampi(std::rint(src[i] / d), -l.offset, qa - l.offset) : 0;
    }
    blk.d = d, blk.m = m;
    pack_legacy(l, blk, dst);
  }
}

// ---- K-quants ----

// Q4_K/Q5_K: eight 6-bit scales and mins in 12 bytes. Bytes 0–3 hold scales 0–3 (low 6 bits)
// and the top 2 bits of scales 4–7; bytes 4–7 the same for mins; bytes 8–11 the low 4 bits of
// scales 4–7 (low nibble) and mins 4–7 (high nibble).
void get_scale_min(const uint8_t* s, int j, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}
void put_scale_min(uint8_t* s, const int* sc, const int* mn) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 4; j++) {
    s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
}

// Affine super-block (Q2_K, Q4_K, Q5_K): per sub-block of `sub` elements a scale and a min,
// each an integer up to smax times the f16 super-block d / dmin; q in 0..qa.
void fit_affine_k(const float* x, int sub, int qa, int smax, GgmlBlock& b) {
  const int ns = QKK / sub;
  float scale[16], mins[16], smx = 0, mmx = 0;
  for (int j = 0; j < ns; j++) {
    const float* xs = x + j * sub;
    float lo = std::min(0.0f, *std::min_element(xs, xs + sub)), hi = *std::max_element(xs, xs + sub);
    scale[j] = (hi - lo) / qa;
    mins[j] = -lo;  // the min is subtracted: only values ≤ 0 are representable
    smx = std::max(smx, scale[j]);
    mmx = std::max(mmx, mins[j]);
  }
  b.d = f16r(smx / smax);
  b.m = f16r(mmx / smax);
  for (int j = 0; j < ns; j++) {
    b.sc[j] = b.d > 0 ? clampi(std::rint(scale[j] / b.d), 0, smax) : 0;
    b.mn[j] = b.m > 0 ? clampi(std::rint(mins[j] / b.m), 0, smax) : 0;
    float D = b.d * (float)b.sc[j], M = b.m * (float)b.mn[j];
    for (int i = 0; i < sub; i++) b.q[j * sub + i] = D > 0 ? clampi(std::rint((x[j * sub + i] + M) / D), 0, qa) : 0;
  }
}

// Symmetric super-block (Q3_K, Q6_K): sub-blocks of 16 with a signed integer scale (|s| ≤ smax)
// times the f16 d; the value of largest magnitude of a sub-block lands on the code −qh.
void fit_sym_k(const float* x, int qh, int smax, GgmlBlock& b) {
  float s[16], amax = 0;
  for (int j = 0; j < 16; j++) {
    float v = 0;
    for (int i = 0; i < 16; i++)
      if (std::fabs(x[j * 16 + i]) > std::fabs(v)) v = x[j * 16 + i];
    s[j] = v / -(float)qh;
    amax = std::max(amax, std::fabs(s[j]));
  }
  b.d = f16r(amax / smax);
  for (int j = 0; j < 16; j++) {
    b.sc[j] = b.d > 0 ? clampi(std::rint(s[j] / b.d), -smax - 1, smax) : 0;
    float D = b.d * (float)b.sc[j];
    for (int i = 0; i < 16; i++) b.q[j * 16 + i] = D != 0 ? clampi(std::rint(x[j * 16 + i] / D), -qh, qh - 1) : 0;
  }
}

// The K-quant packers (layouts as described at each decoder below).
void pack_q2_k(const GgmlBlock& b, uint8_t* dst) {
  std::memset(dst, 0, 84);
  for (int j = 0; j < 16; j++) dst[j] = (uint8_t)(b.sc[j] | (b.mn[j] << 4));
  for (int e = 0; e < QKK; e++) dst[16 + 32 * (e / 128) + e % 32] |= (uint8_t)(b.q[e] << (2 * ((e % 128) / 32)));
  wr16(dst + 80, b.d);
  wr16(dst + 82, b.m);
}
void pack_q3_k(const GgmlBlock& b, uint8_t* dst) {
  std::memset(dst, 0, 110);
  for (int e = 0; e < QKK; e++) {
    int u = b.q[e] + 4;  // 0..7
    dst[32 + 32 * (e / 128) + e % 32] |= (uint8_t)((u & 3) << (2 * ((e % 128) / 32)));
    dst[e % 32] |= (uint8_t)((u >> 2) << (e / 32));
  }
  for (int j = 0; j < 16; j++) {
    int u = b.sc[j] + 32;
    dst[96 + j % 8] |= (uint8_t)((u & 0xF) << (4 * (j / 8)));
    dst[96 + 8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
  }
  wr16(dst + 108, b.d);
}
void pack_q45_k(const GgmlBlock& b, bool five, uint8_t* dst) {
  std::memset(dst, 0, five ? 176 : 144);
  wr16(dst, b.d);
  wr16(dst + 2, b.m);
  put_scale_min(dst + 4, b.sc, b.mn);
  uint8_t* qs = dst + (five ? 48 : 16);
  for (int e = 0; e < QKK; e++) {
    qs[32 * (e / 64) + e % 32] |= (uint8_t)((b.q[e] & 0xF) << (4 * ((e % 64) / 32)));
    if (five) dst[16 + e % 32] |= (uint8_t)((b.q[e] >> 4) << (e / 32));
  }
}
void pack_q6_k(const GgmlBlock& b, uint8_t* dst) {
  std::memset(dst, 0, 210);
  for (int e = 0; e < QKK; e++) {
    int h = e / 128, r = e % 128, u = b.q[e] + 32;
    dst[64 * h + r % 64] |= (uint8_t)((u & 0xF) << (4 * (r / 64)));
    dst[128 + 32 * h + r % 32] |= (uint8_t)((u >> 4) << (2 * (r / 32)));
  }
  for (int j = 0; j < 16; j++) dst[192 + j] = (uint8_t)(int8_t)b.sc[j];
  wr16(dst + 208, b.d);
}

constexpr GgmlGrid kGrids[] = {
    {ggml_q4_0, 32, 32, -8, 7, false, 0, 0, 0},      {ggml_q4_1, 32, 32, 0, 15, true, 0, 0, 0},
    {ggml_q5_0, 32, 32, -16, 15, false, 0, 0, 0},    {ggml_q5_1, 32, 32, 0, 31, true, 0, 0, 0},
    {ggml_q8_0, 32, 32, -128, 127, false, 0, 0, 0},  {ggml_q2_k, 256, 16, 0, 3, true, 0, 15, 15},
    {ggml_q3_k, 256, 16, -4, 3, false, -32, 31, 0},  {ggml_q4_k, 256, 32, 0, 15, true, 0, 63, 63},
    {ggml_q5_k, 256, 32, 0, 31, true, 0, 63, 63},    {ggml_q6_k, 256, 16, -32, 31, false, -128, 127, 0},
};

}  // namespace

const GgmlGrid* ggml_grid(uint32_t type) {
  for (auto& g : kGrids)
    if (g.type == type) return &g;
  return nullptr;
}

void pack_block(uint32_t type, const GgmlBlock& b, uint8_t* out) {
  const GgmlGrid* g = ggml_grid(type);
  if (!g) run_failed("ggml type {} has no blocks to pack", type);
  for (int i = 0; i < g->block; i++)
    if (b.q[i] < g->cmin || b.q[i] > g->cmax)
      run_failed("code {} is outside {}'s range {}..{}", b.q[i], ggml_type_info(type)->name, g->cmin, g->cmax);
  for (int j = 0; g->k() && j < g->block / g->sub; j++)
    if (b.sc[j] < g->smin || b.sc[j] > g->smax || b.mn[j] < 0 || b.mn[j] > g->mmax)
      run_failed("sub-block scale {} / min {} is outside {}'s range", b.sc[j], b.mn[j], ggml_type_info(type)->name);
  switch (type) {
    case ggml_q2_k: return pack_q2_k(b, out);
    case ggml_q3_k: return pack_q3_k(b, out);
    case ggml_q4_k: return pack_q45_k(b, false, out);
    case ggml_q5_k: return pack_q45_k(b, true, out);
    case ggml_q6_k: return pack_q6_k(b, out);
  }
  pack_legacy(legacy(type), b, out);
}

namespace {
// The reference K encoders: fit, then pack (one block at a time).
template <class Fit>
void quantize_k(uint32_t type, const float* src, uint8_t* dst, int64_t n, Fit fit) {
  const int bytes = ggml_type_info(type)->bytes;
  GgmlBlock b;
  for (int64_t i = 0; i < n / QKK; i++, src += QKK, dst += bytes) {
    fit(src, b);
    pack_block(type, b, dst);
  }
}
}  // namespace

void dequantize_q4_0(const uint8_t* s, float* d, int64_t n) { dequantize_legacy(legacy(ggml_q4_0), s, d, n); }
void dequantize_q4_1(const uint8_t* s, float* d, int64_t n) { dequantize_legacy(legacy(ggml_q4_1), s, d, n); }
void dequantize_q5_0(const uint8_t* s, float* d, int64_t n) { dequantize_legacy(legacy(ggml_q5_0), s, d, n); }
void dequantize_q5_1(const uint8_t* s, float* d, int64_t n) { dequantize_legacy(legacy(ggml_q5_1), s, d, n); }
void dequantize_q8_0(const uint8_t* s, float* d, int64_t n) { dequantize_legacy(legacy(ggml_q8_0), s, d, n); }
void quantize_q4_0(const float* s, uint8_t* d, int64_t n) { quantize_legacy(legacy(ggml_q4_0), s, d, n); }
void quantize_q4_1(const float* s, uint8_t* d, int64_t n) { quantize_legacy(legacy(ggml_q4_1), s, d, n); }
void quantize_q5_0(const float* s, uint8_t* d, int64_t n) { quantize_legacy(legacy(ggml_q5_0), s, d, n); }
void quantize_q5_1(const float* s, uint8_t* d, int64_t n) { quantize_legacy(legacy(ggml_q5_1), s, d, n); }
void quantize_q8_0(const float* s, uint8_t* d, int64_t n) { quantize_legacy(legacy(ggml_q8_0), s, d, n); }

void unpack_legacy_block(uint32_t type, const uint8_t* block, int32_t* codes, uint16_t& d, uint16_t& m) {
  unpack_legacy(legacy(type), block, codes, d, m);
}

// Q2_K (84 B): scales[16] (scale low nibble, min high nibble), qs[64], d, dmin. Element e:
// 2 bits at qs[32·(e/128) + e%32], shift 2·((e%128)/32); sub-block e/16.
void dequantize_q2_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / QKK; b++, src += 84, dst += QKK) {
    const uint8_t *sc = src, *qs = src + 16;
    float d = rd16(src + 80), dmin = rd16(src + 82);
    for (int e = 0; e < QKK; e++) {
      int q = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      float dl = d * (float)(sc[e / 16] & 0xF), ml = dmin * (float)(sc[e / 16] >> 4);
      dst[e] = dl * (float)q - ml;
    }
  }
}
void quantize_q2_k(const float* src, uint8_t* dst, int64_t n) {
  quantize_k(ggml_q2_k, src, dst, n, [](const float* x, GgmlBlock& b) { fit_affine_k(x, 16, 3, 15, b); });
}

// Q3_K (110 B): hmask[32], qs[64], scales[12], d. Element e: low 2 bits as in Q2_K, high bit
// (e/32) of hmask[e%32]; q = low − 4 where the high bit is 0. Scale j (6 bits, minus 32): low
// 4 bits in byte j%8 (j < 8 low nibble, else high), high 2 bits in byte 8 + j%4, shift 2·(j/4).
void dequantize_q3_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / QKK; b++, src += 110, dst += QKK) {
    const uint8_t *hm = src, *qs = src + 32, *s = src + 96;
    float d = rd16(src + 108);
    for (int e = 0; e < QKK; e++) {
      int j = e / 16;
      int sc = (((s[j % 8] >> (4 * (j / 8))) & 0xF) | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
      int lo = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      int q = lo - (((hm[e % 32] >> (e / 32)) & 1) ? 0 : 4);
      dst[e] = d * (float)sc * (float)q;
    }
  }
}
void quantize_q3_k(const float* src, uint8_t* dst, int64_t n) {
  quantize_k(ggml_q3_k, src, dst, n, [](const float* x, GgmlBlock& b) { fit_sym_k(x, 4, 31, b); });
}

// Q4_K (144 B): d, dmin, scales[12], qs[128]. Element e: nibble (e%64)/32 of qs[32·(e/64) + e%32];
// sub-block e/32.
void dequantize_q4_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / QKK; b++, src += 144, dst += QKK) {
    float d = rd16(src), dmin = rd16(src + 2);
    const uint8_t *s = src + 4, *qs = src + 16;
    for (int e = 0; e < QKK; e++) {
      int sc, mn;
      get_scale_min(s, e / 32, sc, mn);
      int q = (qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0xF;
      float d1 = d * (float)sc, m1 = dmin * (float)mn;
      dst[e] = d1 * (float)q - m1;
    }
  }
}
void quantize_q4_k(const float* src, uint8_t* dst, int64_t n) {
  quantize_k(ggml_q4_k, src, dst, n, [](const float* x, GgmlBlock& b) { fit_affine_k(x, 32, 15, 63, b); });
}

// Q5_K (176 B): d, dmin, scales[12], qh[32], qs[128]: Q4_K's nibbles plus high bit (e/32) of qh[e%32].
void dequantize_q5_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / QKK; b++, src += 176, dst += QKK) {
    float d = rd16(src), dmin = rd16(src + 2);
    const uint8_t *s = src + 4, *qh = src + 16, *qs = src + 48;
    for (int e = 0; e < QKK; e++) {
      int sc, mn;
      get_scale_min(s, e / 32, sc, mn);
      int q = ((qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0xF) | (((qh[e % 32] >> (e / 32)) & 1) << 4);
      float d1 = d * (float)sc, m1 = dmin * (float)mn;
      dst[e] = d1 * (float)q - m1;
    }
  }
}
void quantize_q5_k(const float* src, uint8_t* dst, int64_t n) {
  quantize_k(ggml_q5_k, src, dst, n, [](const float* x, GgmlBlock& b) { fit_affine_k(x, 32, 31, 63, b); });
}

// Q6_K (210 B): ql[128], qh[64], scales[16] (int8), d. Element e (h = e/128, r = e%128): low 4 bits
// = nibble r/64 of ql[64h + r%64], high 2 bits at qh[32h + r%32] shift 2·(r/32); q = that − 32.
void dequantize_q6_k(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / QKK; b++, src += 210, dst += QKK) {
    const uint8_t *ql = src, *qh = src + 128;
    const int8_t* sc = (const int8_t*)(src + 192);
    float d = rd16(src + 208);
    for (int e = 0; e < QKK; e++) {
      int h = e / 128, r = e % 128;
      int q = (((ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF) | (((qh[32 * h + r % 32] >> (2 * (r / 32))) & 3) << 4)) - 32;
      dst[e] = d * (float)sc[e / 16] * (float)q;
    }
  }
}
void quantize_q6_k(const float* src, uint8_t* dst, int64_t n) {
  quantize_k(ggml_q6_k, src, dst, n, [](const float* x, GgmlBlock& b) { fit_sym_k(x, 32, 127, b); });
}

}  // namespace tq
