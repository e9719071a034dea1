// SHA-256 (FIPS 180-4): fingerprints of calibration data, models and recipes,
// so a resumed run and a report can say exactly what they were made from.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tq {

class Sha256 {
 public:
  Sha256();
  Sha256& add(const void* data, size_t n);
  Sha256& add(std::string_view s) { return add(s.data(), s.size()); }
  std::array<uint8_t, 32> digest();  // finishes; the object is spent
  std::string hex();                 // digest() as 64 lowercase hex digits

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t fill_ = 0;
  uint64_t bits_ = 0;
};

inline std::string sha256_hex(std::string_view s) { return Sha256().add(s).hex(); }

}  // namespace tq
