// JSON that comes from outside (files, options): parsed with a nesting limit,
// so a document 10^5 levels deep is refused while it is parsed, before any
// recursive copy or dump can overflow the stack; and read through JsonAt,
// which carries the key path so that every error names the file and the key:
//   plan.json: sites."blk.0.q".scale: must be a number, got "x"
#pragma once
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cfloat>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace tq {

constexpr int kMaxJsonDepth = 64;

// source names the text in messages (a path, "--set w_bits").
nlohmann::json parse_json(std::string_view text, std::string_view source);
nlohmann::json read_json_file(const std::string& path);

class JsonAt {
 public:
  JsonAt(const nlohmann::json& j, std::string source) : j_(&j), source_(std::move(source)) {}
  const nlohmann::json& json() const { return *j_; }
  std::string where() const { return path_.empty() ? source_ : source_ + ": " + path_; }

  bool has(std::string_view key) const;           // an object holding key with a non-null value
  JsonAt operator[](std::string_view key) const;  // the member; bad_input when absent
  JsonAt operator[](size_t i) const;              // the element of an array
  std::vector<std::pair<std::string, JsonAt>> items() const;  // members of an object
  std::vector<JsonAt> elements() const;                       // elements of an array
  const JsonAt& object() const;                               // checks that it is an object

  int64_t integer(int64_t lo, int64_t hi) const;
  double number(double lo = -DBL_MAX, double hi = DBL_MAX) const;  // finite
  bool boolean() const;
  std::string string() const;
  std::vector<float> floats(double lo = -FLT_MAX, double hi = FLT_MAX) const;
  std::vector<std::string> strings() const;
  // The member key, or fallback when it is absent (or null).
  int64_t integer(std::string_view key, int64_t lo, int64_t hi, int64_t fallback) const;
  double number(std::string_view key, double lo, double hi, double fallback) const;
  bool boolean(std::string_view key, bool fallback) const;
  std::string string(std::string_view key, const std::string& fallback) const;

  template <class... A>
  [[noreturn]] void fail(fmt::format_string<A...> f, A&&... a) const {
    bad_input("{}: {}", where(), fmt::format(f, std::forward<A>(a)...));
  }

 private:
  JsonAt(const nlohmann::json& j, std::string source, std::string path)
      : j_(&j), source_(std::move(source)), path_(std::move(path)) {}
  [[noreturn]] void wrong_type(const char* expected) const;
  const nlohmann::json* j_;
  std::string source_, path_;
};

}  // namespace tq
