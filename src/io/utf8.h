#pragma once
#include <string_view>

namespace tq {

// True when s is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace tq
