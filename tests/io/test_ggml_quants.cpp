// ggml block formats: hand-built blocks decode to hand-computed values (the
// layouts), encoders round-trip within their type's error and reproduce
// representable blocks exactly, and the quality order of the types holds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/rng.h"
#include "io/ggml_quants.h"
#include "io/ggml_types.h"

namespace tq {

namespace {

void put16(std::vector<uint8_t>& b, size_t at, float v) {
  uint16_t h = f32_to_f16(v);
  std::memcpy(b.data() + at, &h, 2);
}

std::vector<float> decode(uint32_t type, const std::vector<uint8_t>& b) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  std::vector<float> out(b.size() / t->bytes * t->block);
  t->to_f32(b.data(), out.data(), (int64_t)out.size());
  return out;
}

std::vector<uint8_t> encode(uint32_t type, const std::vector<float>& x) {
  const GgmlTypeInfo* t = ggml_type_info(type);
  std::vector<uint8_t> out(x.size() / t->block * t->bytes);
  t->from_f32(x.data(), out.data(), (int64_t)x.size());
  return out;
}

}  // namespace

TEST(GgmlQuants, LegacyLayouts) {
  std::vector<uint8_t> b(18, 0x88);  // Q4_0: every code 8 → 0
  put16(b, 0, 0.5f);
  b[2] = 0x21, b[2 + 15] = 0xF0;  // element 0 = 1, element 16 = 2; element 15 = 0, element 31 = 15
  auto x = decode(ggml_q4_0, b);
  EXPECT_EQ(x[0], -3.5f);
  EXPECT_EQ(x[16], -3.0f);
  EXPECT_EQ(x[15], -4.0f);
  EXPECT_EQ(x[31], 3.5f);
  EXPECT_EQ(x[1], 0.0f);

  b.assign(20, 0);  // Q4_1: d 0.5, m −1
  put16(b, 0, 0.5f);
  put16(b, 2, -1.0f);
  b[4] = 0x21, b[4 + 15] = 0xF0;
  x = decode(ggml_q4_1, b);
  EXPECT_EQ(x[0], -0.5f);
  EXPECT_EQ(x[16], 0.0f);
  EXPECT_EQ(x[15], -1.0f);
  EXPECT_EQ(x[31], 6.5f);

  for (uint32_t type : {ggml_q5_0, ggml_q5_1}) {  // high bits of elements 0 and 31 set
    bool m = type == ggml_q5_1;
    b.assign(m ? 24 : 22, 0);
    put16(b, 0, 0.25f);
    if (m) put16(b, 2, 1.0f);
    size_t qh = m ? 4 : 2, qs = qh + 4;
    uint32_t bits = 0x80000001u;
    std::memcpy(b.data() + qh, &bits, 4);
    b[qs] = 0x0F, b[qs + 15] = 0x30;  // element 0 low 15 (→ 31); element 31 low 3 (→ 19)
    x = decode(type, b);
    EXPECT_EQ(x[0], m ? 8.75f : 3.75f) << m;
    EXPECT_EQ(x[16], m ? 1.0f : -4.0f) << m;
    EXPECT_EQ(x[31], m ? 5.75f : 0.75f) << m;
  }

  b.assign(34, 0);  // Q8_0
  put16(b, 0, 0.5f);
  b[2 + 3] = 0xFE, b[2 + 31] = 127;
  x = decode(ggml_q8_0, b);
  EXPECT_EQ(x[3], -1.0f);
  EXPECT_EQ(x[31], 63.5f);
  EXPECT_EQ(x[0], 0.0f);
}

TEST(GgmlQuants, KQuantLayouts) {
  std::vector<uint8_t> b(84, 0);  // Q2_K: scales[16] (scale | min << 4), qs[64], d, dmin
  put16(b, 80, 0.5f);
  put16(b, 82, 0.25f);
  b[0] = 0x21, b[2] = 0x13, b[4] = 0x05, b[6] = 0xF0, b[10] = 0x01;
  b[16] = 0xE4;       // byte 0 of qs: elements 0, 32, 64, 96 get 0, 1, 2, 3
  b[16 + 37] = 0x0C;  // byte 37 (second half, position 5), shift 2: element 128 + 32 + 5 = 165 gets 3
  auto x = decode(ggml_q2_k, b);
  EXPECT_EQ(x[0], -0.5f);    // 0.5·1·0 − 0.25·2
  EXPECT_EQ(x[32], 1.25f);   // 0.5·3·1 − 0.25·1
  EXPECT_EQ(x[64], 5.0f);    // 0.5·5·2
  EXPECT_EQ(x[96], -3.75f);  // 0 − 0.25·15
  EXPECT_EQ(x[165], 1.5f);   // sub-block 10: 0.5·1·3
  EXPECT_EQ(x[1], -0.5f);

  b.assign(110, 0);  // Q3_K: hmask[32], qs[64], scales[12], d
  put16(b, 108, 0.5f);
  b[96 + 0] = 0x01, b[96 + 8] = 0x02;  // scale 0 = 0b10'0001 − 32 = +1
  b[96 + 1] = 0xD0, b[96 + 9] = 0x10;  // scale 9 = 0b01'1101 − 32 = −3
  b[32 + 0] = 0x03, b[0] = 0x01;       // element 0: low 3, high bit set → q = 3
  b[32 + 48] = 0x02, b[16] = 0x10;     // element 144 (sub-block 9): low 2 at byte 32·1 + 16, high bit 4 of hmask[16]
  x = decode(ggml_q3_k, b);
  EXPECT_EQ(x[0], 1.5f);    // 0.5·1·3
  EXPECT_EQ(x[1], -2.0f);   // high bit clear: q = 0 − 4
  EXPECT_EQ(x[144], -3.0f);  // 0.5·(−3)·2
  EXPECT_EQ(x[145], 6.0f);   // 0.5·(−3)·(−4)
  EXPECT_EQ(x[16], 64.0f);   // scale 1 unset: 0 − 32; q = −4

  for (uint32_t type : {ggml_q4_k, ggml_q5_k}) {  // d, dmin, scales[12], (qh[32],) qs[128]
    bool five = type == ggml_q5_k;
    b.assign(five ? 176 : 144, 0);
    put16(b, 0, 0.5f);
    put16(b, 2, 1.0f);
    // scale/min of sub-block 0: 3 and 2; of sub-block 5: 20 = 0b01'0100 and 35 = 0b10'0011.
    b[4 + 0] = 3, b[4 + 4] = 2;
    b[4 + 1] = 0x40, b[4 + 5] = 0x80, b[4 + 9] = 0x34;
    size_t qs = five ? 48 : 16;
    b[qs + 0] = 0x07;        // element 0: low nibble of byte 0
    b[qs + 64 + 10] = 0xB0;  // element 170 = 64·2 + 32 + 10: high nibble of byte 74
    if (five) b[16 + 0] = 0x01, b[16 + 10] = 0x20;  // high bits: element 0 (bit 0), element 170 (bit 5)
    x = decode(type, b);
    EXPECT_EQ(x[0], five ? 32.5f : 8.5f) << five;    // 0.5·3·q − 1·2, q = 23 or 7
    EXPECT_EQ(x[170], five ? 235.0f : 75.0f) << five;  // 0.5·20·q − 35, q = 27 or 11
    EXPECT_EQ(x[32], 0.0f) << five;
  }

  b.assign(210, 0);  // Q6_K: ql[128], qh[64], scales[16], d
  put16(b, 208, 0.5f);
  b[192 + 0] = 2, b[192 + 12] = 0xFF;  // scales 2 and −1
  b[0] = 0x05, b[128] = 0x02;          // element 0: low 5, high 2 → 37 − 32 = 5
  b[72] = 0x30;                        // element 200 (h 1, r 72): high nibble of ql[64 + 8]; qh[160 + 8] shift 4 = 0
  x = decode(ggml_q6_k, b);
  EXPECT_EQ(x[0], 5.0f);      // 0.5·2·5
  EXPECT_EQ(x[200], 14.5f);   // 0.5·(−1)·(3 − 32)
  EXPECT_EQ(x[1], -32.0f);    // 0.5·2·(−32)
}

TEST(GgmlQuants, EncodersRoundTripInQualityOrder) {
  Rng r(1);
  std::vector<float> x(4096);
  for (auto& v : x) v = 0.03f * (float)r.normal();
  std::map<uint32_t, double> err;
  for (uint32_t type : {ggml_q8_0, ggml_q6_k, ggml_q5_1, ggml_q5_0, ggml_q5_k, ggml_q4_1, ggml_q4_0, ggml_q4_k,
                        ggml_q3_k, ggml_q2_k}) {
    auto y = decode(type, encode(type, x));
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); i++) num += (y[i] - x[i]) * (y[i] - x[i]), den += x[i] * x[i];
    err[type] = std::sqrt(num / den);
    EXPECT_EQ(encode(type, x), encode(type, x));  // deterministic
  }
  // A uniform b-bit grid over a block's range gives a relative RMS of about 2^-b·1.3–1.7 on normal data.
  EXPECT_LT(err[ggml_q8_0], 0.006);
  EXPECT_LT(err[ggml_q6_k], 0.025);
  EXPECT_LT(err[ggml_q5_1], 0.045);
  EXPECT_LT(err[ggml_q4_1], 0.09);
  EXPECT_LT(err[ggml_q3_k], 0.2);
  EXPECT_LT(err[ggml_q2_k], 0.4);
  EXPECT_LT(err[ggml_q8_0], err[ggml_q6_k]);
  EXPECT_LT(err[ggml_q6_k], err[ggml_q5_k]);
  EXPECT_LT(err[ggml_q5_k], err[ggml_q4_k]);
  EXPECT_LT(err[ggml_q4_k], err[ggml_q3_k]);
  EXPECT_LT(err[ggml_q3_k], err[ggml_q2_k]);
  EXPECT_LT(err[ggml_q5_1], err[ggml_q4_1]);
  EXPECT_LT(err[ggml_q5_0], err[ggml_q4_0]);
}

TEST(GgmlQuants, RepresentableLegacyBlocksRoundTripExactly) {
  Rng r(2);
  for (uint32_t type : {ggml_q4_0, ggml_q4_1, ggml_q5_0, ggml_q5_1, ggml_q8_0}) {
    const GgmlGrid& g = *ggml_grid(type);
    const int lo = type == ggml_q8_0 ? -127 : g.cmin, hi = g.cmax;  // the reference Q8_0 encoder spans ±127
    std::vector<uint8_t> blocks(4 * ggml_type_info(type)->bytes);
    for (int b = 0; b < 4; b++) {
      GgmlBlock blk;
      blk.d = 0.125f, blk.m = -1.0f;
      for (int i = 0; i < 32; i++) blk.q[i] = lo + (int)r.below(hi - lo + 1);
      blk.q[3] = lo, blk.q[9] = hi;  // the block's range spans the codes (affine) / its largest magnitude sits on the end
      pack_block(type, blk, blocks.data() + b * ggml_type_info(type)->bytes);
    }
    auto x = decode(type, blocks);
    EXPECT_EQ(encode(type, x), blocks) << ggml_type_info(type)->name;
  }
  GgmlBlock bad;
  bad.q[0] = 16;
  std::vector<uint8_t> out(20);
  EXPECT_ANY_THROW(pack_block(ggml_q4_1, bad, out.data()));
}

// The encoder from chosen codes and scales: for random parameters and codes anywhere in every
// type's range, the decoder reads back exactly ggml_value() of each code.
TEST(GgmlQuants, PackedBlocksDecodeToTheirGridValues) {
  Rng r(5);
  for (uint32_t type : {ggml_q4_0, ggml_q4_1, ggml_q5_0, ggml_q5_1, ggml_q8_0, ggml_q2_k, ggml_q3_k, ggml_q4_k,
                        ggml_q5_k, ggml_q6_k}) {
    const GgmlGrid& g = *ggml_grid(type);
    const GgmlTypeInfo& t = *ggml_type_info(type);
    ASSERT_EQ(g.block, t.block);
    for (int trial = 0; trial < 20; trial++) {
      GgmlBlock b;
      b.d = f16_to_f32(f32_to_f16((r.uniform() - 0.3f) * 0.1f));
      b.m = f16_to_f32(f32_to_f16(g.k() ? r.uniform() * 0.05f : (r.uniform() - 0.5f)));
      for (int j = 0; j < g.block / g.sub; j++) {
        b.sc[j] = g.k() ? g.smin + (int)r.below(g.smax - g.smin + 1) : 0;
        b.mn[j] = g.k() ? (int)r.below(g.mmax + 1) : 0;
      }
      for (int i = 0; i < g.block; i++) b.q[i] = g.cmin + (int)r.below(g.cmax - g.cmin + 1);
      if (trial == 0)  // the ends of every range
        for (int j = 0; j < g.block / g.sub; j++) b.sc[j] = j % 2 ? g.smax : g.smin, b.mn[j] = j % 2 ? g.mmax : 0;
      std::vector<uint8_t> bytes(t.bytes);
      pack_block(type, b, bytes.data());
      std::vector<float> x = decode(type, bytes);
      for (int i = 0; i < g.block; i++)
        ASSERT_EQ(x[i], ggml_value(g, b, i / g.sub, b.q[i])) << t.name << " element " << i;
    }
    GgmlBlock bad;
    bad.q[g.block - 1] = g.cmax + 1;
    std::vector<uint8_t> out(t.bytes);
    EXPECT_ANY_THROW(pack_block(type, bad, out.data())) << t.name;
    if (g.k()) {
      GgmlBlock s;
      s.sc[0] = g.smax + 1;
      EXPECT_ANY_THROW(pack_block(type, s, out.data())) << t.name;
    }
  }
  EXPECT_EQ(ggml_grid(ggml_f16), nullptr);
}

}  // namespace tq
