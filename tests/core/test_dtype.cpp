#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/rng.h"

namespace tq {

// Slow reference: the nearest f16 value by exhaustive search over the f16 grid, ties to even.
static uint16_t f16_reference(float f) {
  if (std::isnan(f)) return 0x7e00;
  uint16_t best = 0;
  double bd = INFINITY;
  for (uint32_t h = 0; h < 0x7c00; h++) {
    double d = std::fabs((double)std::fabs(f) - f16_to_f32((uint16_t)h));
    if (d < bd || (d == bd && (h & 1) == 0)) bd = d, best = (uint16_t)h;
  }
  if (std::fabs(f) >= 65520.0f) best = 0x7c00;
  return (uint16_t)(best | (std::signbit(f) ? 0x8000 : 0));
}

TEST(Dtype, F16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = f16_to_f32((uint16_t)h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(Dtype, F16RoundsToNearestEven) {
  Rng rng(7);
  for (int i = 0; i < 300; i++) {
    float f = (float)(rng.normal() * std::pow(10.0, (int)rng.below(12) - 7));
    EXPECT_EQ(f32_to_f16(f), f16_reference(f)) << f;
  }
  // Exact midpoints between neighbours round to the even one.
  for (uint16_t h : {0x0001, 0x03ff, 0x3c00, 0x3c01, 0x7bfe}) {
    double mid = 0.5 * ((double)f16_to_f32(h) + f16_to_f32(h + 1));
    EXPECT_EQ(f32_to_f16((float)mid), (h & 1) ? h + 1 : h) << std::hex << h;
  }
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e-9f), 0x8000);
}

TEST(Dtype, Bf16) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = bf16_to_f32((uint16_t)h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_bf16(f), h);
  }
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);  // tie rounds to even
  EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
}

}  // namespace tq
