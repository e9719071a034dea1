#include "core/checked.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace tq {

int64_t parse_int(std::string_view s, int64_t lo, int64_t hi, std::string_view what, int base) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || end != s.data() + s.size() || ec == std::errc::invalid_argument)
    bad_input("{}: '{}' is not {}", what, s, base == 16 ? "a hexadecimal number" : "an integer");
  if (ec == std::errc::result_out_of_range || v < lo || v > hi)
    bad_input("{}: {} is out of range [{}, {}]", what, s, lo, hi);
  return v;
}

double parse_number(std::string_view s, double lo, double hi, std::string_view what) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || end != s.data() + s.size() || ec == std::errc::invalid_argument)
    bad_input("{}: '{}' is not a number", what, s);
  if (ec == std::errc::result_out_of_range || !std::isfinite(v) || v < lo || v > hi)
    bad_input("{}: {} is out of range [{}, {}]", what, s, lo, hi);
  return v;
}

int to_int(int64_t v, std::string_view what) {
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
    bad_input("{} = {} does not fit in 32 bits", what, v);
  return (int)v;
}

int64_t mul_size(int64_t a, int64_t b, std::string_view what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) bad_input("{}: {} x {} overflows", what, a, b);
  return r;
}

int64_t add_size(int64_t a, int64_t b, std::string_view what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) bad_input("{}: {} + {} overflows", what, a, b);
  return r;
}

}  // namespace tq
