#include "core/json.h"

#include <cmath>

#include "core/mmap.h"

namespace tq {

using json = nlohmann::json;

json parse_json(std::string_view text, std::string_view source) {
  // The callback sees each object or array open with the number of containers around it.
  auto limit = [&](int depth, json::parse_event_t event, json&) {
    bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
    if (opens && depth >= kMaxJsonDepth) bad_input("{}: JSON is nested deeper than {} levels", source, kMaxJsonDepth);
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), limit);
  } catch (const json::exception& e) {
    bad_input("{}: not valid JSON: {}", source, e.what());
  }
}

json read_json_file(const std::string& path) { return parse_json(read_text_file(path), path); }

// A key as it appears in a path: bare when it is a plain word, else quoted.
static std::string key_text(std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) plain = plain && (std::isalnum((unsigned char)c) || c == '_');
  return plain ? std::string(key) : json(std::string(key)).dump();
}

// A value as it appears in a message: its JSON, shortened.
static std::string value_text(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

void JsonAt::wrong_type(const char* expected) const { fail("must be {}, got {}", expected, value_text(*j_)); }

bool JsonAt::has(std::string_view key) const {
  object();
  auto it = j_->find(key);
  return it != j_->end() && !it->is_null();
}

JsonAt JsonAt::operator[](std::string_view key) const {
  object();
  auto it = j_->find(key);
  std::string path = path_.empty() ? key_text(key) : path_ + "." + key_text(key);
  if (it == j_->end()) JsonAt(*j_, source_, path).fail("is missing");
  return JsonAt(*it, source_, path);
}

JsonAt JsonAt::operator[](size_t i) const {
  if (!j_->is_array()) wrong_type("an array");
  if (i >= j_->size()) fail("has {} elements, element {} is missing", j_->size(), i);
  return JsonAt((*j_)[i], source_, path_ + "[" + std::to_string(i) + "]");
}

std::vector<std::pair<std::string, JsonAt>> JsonAt::items() const {
  object();
  std::vector<std::pair<std::string, JsonAt>> out;
  for (auto it = j_->begin(); it != j_->end(); ++it)
    out.push_back({it.key(), JsonAt(it.value(), source_, path_.empty() ? key_text(it.key())
                                                                       : path_ + "." + key_text(it.key()))});
  return out;
}

std::vector<JsonAt> JsonAt::elements() const {
  if (!j_->is_array()) wrong_type("an array");
  std::vector<JsonAt> out;
  for (size_t i = 0; i < j_->size(); i++)
    out.push_back(JsonAt((*j_)[i], source_, path_ + "[" + std::to_string(i) + "]"));
  return out;
}

const JsonAt& JsonAt::object() const {
  if (!j_->is_object()) wrong_type("an object");
  return *this;
}

int64_t JsonAt::integer(int64_t lo, int64_t hi) const {
  if (!j_->is_number_integer() || (j_->is_number_unsigned() && j_->get<uint64_t>() > (uint64_t)INT64_MAX))
    wrong_type("an integer");
  int64_t v = j_->get<int64_t>();
  if (v < lo || v > hi) fail("{} is out of range [{}, {}]", v, lo, hi);
  return v;
}

double JsonAt::number(double lo, double hi) const {
  if (!j_->is_number()) wrong_type("a number");
  double v = j_->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) fail("{} is out of range [{}, {}]", value_text(*j_), lo, hi);
  return v;
}

bool JsonAt::boolean() const {
  if (!j_->is_boolean()) wrong_type("true or false");
  return j_->get<bool>();
}

std::string JsonAt::string() const {
  if (!j_->is_string()) wrong_type("a string");
  return j_->get<std::string>();
}

std::vector<float> JsonAt::floats(double lo, double hi) const {
  std::vector<float> out;
  for (auto& e : elements()) out.push_back((float)e.number(lo, hi));
  return out;
}

std::vector<std::string> JsonAt::strings() const {
  std::vector<std::string> out;
  for (auto& e : elements()) out.push_back(e.string());
  return out;
}

int64_t JsonAt::integer(std::string_view key, int64_t lo, int64_t hi, int64_t fallback) const {
  return has(key) ? (*this)[key].integer(lo, hi) : fallback;
}
double JsonAt::number(std::string_view key, double lo, double hi, double fallback) const {
  return has(key) ? (*this)[key].number(lo, hi) : fallback;
}
bool JsonAt::boolean(std::string_view key, bool fallback) const {
  return has(key) ? (*this)[key].boolean() : fallback;
}
std::string JsonAt::string(std::string_view key, const std::string& fallback) const {
  return has(key) ? (*this)[key].string() : fallback;
}

}  // namespace tq
