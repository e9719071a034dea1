// Per-tensor rules of a recipe: {"match": REGEX, "bits": B, "group": G, "scheme": "sym"|"asym"}
// re-quantizes the matching weights round-to-nearest after the passes chose (the "rules" pass,
// the recipe's last step); {"match": REGEX, "type": "q6_K"} pins a GGUF recipe's ggml type for
// them (the gguf pass's tensor_types). REGEX is searched in our tensor names
// ("blk.3.ffn_down.weight"); the first rule that matches a tensor applies.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "core/json.h"
#include "quant/quantizer.h"

namespace tq {

struct TensorRule {
  std::string match;
  std::regex re;
  uint32_t type = 0;  // a ggml type rule, or 0
  QuantSpec spec;     // a bits rule: bits, scheme, granularity (row, or group)
};

// The rules of a JSON array, each checked (errors name the key path of j).
std::vector<TensorRule> parse_tensor_rules(const JsonAt& j);
// The first rule matching `name`, or null.
const TensorRule* find_rule(const std::vector<TensorRule>& rules, const std::string& name);

}  // namespace tq
