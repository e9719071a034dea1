#include "core/error.h"

#include <string_view>

namespace tq {

void internal_error(const char* file, int line, const std::string& what) {
  std::string_view f = file;  // from the source root: the build passes absolute paths
  if (size_t at = f.rfind("/src/"); at != std::string_view::npos) f.remove_prefix(at + 1);
  throw Error(1, fmt::format("internal error at {}:{}: {}", f, line, what));
}

}  // namespace tq
