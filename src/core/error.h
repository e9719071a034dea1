// Errors: every failure carries the exit status the CLI should return
// (1 = the run failed or a bug, 2 = bad usage or bad input) and a one-line message.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace tq {

struct Error : std::runtime_error {
  int exit_code;
  Error(int code, const std::string& msg) : std::runtime_error(msg), exit_code(code) {}
};

// Bad input: a malformed file, an impossible option, data that cannot be used.
template <class... A>
[[noreturn]] void bad_input(fmt::format_string<A...> f, A&&... a) {
  throw Error(2, fmt::format(f, std::forward<A>(a)...));
}

// A run that failed for a reason other than its input (I/O error, divergence).
template <class... A>
[[noreturn]] void run_failed(fmt::format_string<A...> f, A&&... a) {
  throw Error(1, fmt::format(f, std::forward<A>(a)...));
}

#define TQ_CHECK_INPUT(cond, ...) \
  do {                            \
    if (!(cond)) ::tq::bad_input(__VA_ARGS__); \
  } while (0)

// A broken internal invariant: a bug, not bad input. Exit status 1, with the place
// ("internal error at src/nn/forward.cpp:12: ...").
[[noreturn]] void internal_error(const char* file, int line, const std::string& what);
#define TQ_ASSERT(cond, ...)                                                    \
  do {                                                                          \
    if (!(cond)) ::tq::internal_error(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

}  // namespace tq
