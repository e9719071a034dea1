// Numbers that come from outside (files, names, command lines): parsed with
// range checks, narrowed with checks, multiplied in 64 bits with overflow
// checks. Each throws bad_input naming `what` (the file and key, the option).
#pragma once
#include <cstdint>
#include <string_view>

namespace tq {

// The whole of s as an integer in [lo, hi] (no sign '+', spaces or trailing characters).
int64_t parse_int(std::string_view s, int64_t lo, int64_t hi, std::string_view what, int base = 10);
// The whole of s as a finite number in [lo, hi].
double parse_number(std::string_view s, double lo, double hi, std::string_view what);

// v as an int, refused when it does not fit (a size from a file: 2^32 + 1 layers must not become 1).
int to_int(int64_t v, std::string_view what);
// a · b and a + b of non-negative sizes, refused on overflow.
int64_t mul_size(int64_t a, int64_t b, std::string_view what);
int64_t add_size(int64_t a, int64_t b, std::string_view what);

}  // namespace tq
