// A small deterministic generator (xoshiro256**, seeded by splitmix64), so
// that the same seed gives the same bits on every platform and library.
#pragma once
#include <cmath>
#include <cstdint>

namespace tq {

struct Rng {
  uint64_t s[4];

  explicit Rng(uint64_t seed = 0) {
    for (auto& w : s) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      w = z ^ (z >> 31);
    }
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
  // Uniform in [0, 1) with 24 random bits (exact in float).
  float uniform() { return (float)(next() >> 40) * (1.0f / 16777216.0f); }
  double uniform_f64() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  // Standard normal by Box-Muller (one value per call, the pair's second is dropped for simplicity).
  double normal() {
    double u1 = uniform_f64(), u2 = uniform_f64();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace tq
