#include "core/tensor.h"

#include <fmt/format.h>

namespace tq {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += fmt::format("{}{}", i ? ", " : "", s[i]);
  return out + "]";
}

}  // namespace tq
