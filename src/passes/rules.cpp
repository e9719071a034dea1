#include "passes/rules.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "io/ggml_types.h"
#include "nn/block.h"
#include "passes/pass.h"
#include "quant/weights.h"

namespace tq {

namespace {

// The numbers std::regex reads itself, before it compiles: libstdc++ accumulates a
// back-reference (\N) or a repetition count ({m,n}) in a long without a range check (signed
// overflow), and builds a count's copies recursively. Back-references up to \99 and counts up to
// 1000 are refused beyond that, here, with the pattern's key path.
void check_regex_numbers(const JsonAt& at, const std::string& re) {
  auto digits = [&](size_t i) {
    size_t n = 0;
    while (i + n < re.size() && std::isdigit((unsigned char)re[i + n])) n++;
    return n;
  };
  for (size_t i = 0; i < re.size(); i++) {
    if (re[i] == '\\' && i + 1 < re.size()) {
      if (digits(i + 1) > 2) bad_input("{}: back-reference \\{} is beyond \\99", at.where(), re.substr(i + 1, digits(i + 1)));
      i++;
    } else if (re[i] == '{') {
      for (size_t k = i + 1; k < re.size() && (std::isdigit((unsigned char)re[k]) || re[k] == ','); k += std::max<size_t>(digits(k), 1))
        if (digits(k) > 4 || (digits(k) > 0 && std::stoi(re.substr(k, digits(k))) > 1000))
          bad_input("{}: repetition count {} is over 1000", at.where(), re.substr(k, digits(k)));
    }
  }
}

}  // namespace

std::vector<TensorRule> parse_tensor_rules(const JsonAt& j) {
  std::vector<TensorRule> out;
  for (const JsonAt& r : j.elements()) {
    r.object();
    for (auto& kv : r.items())
      if (kv.first != "match" && kv.first != "bits" && kv.first != "group" && kv.first != "scheme" &&
          kv.first != "type")
        bad_input("{}: unknown key '{}' (match, bits, group, scheme, type)", r.where(), kv.first);
    TensorRule t;
    t.match = r["match"].string();
    if (t.match.empty() || t.match.size() > 256)  // std::regex compiles recursively: keep patterns short
      bad_input("{}: a pattern of 1 to 256 characters, got {}", r["match"].where(), t.match.size());
    check_regex_numbers(r["match"], t.match);
    try {
      t.re = std::regex(t.match, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      bad_input("{}: '{}' is not a regular expression ({})", r["match"].where(), t.match, e.what());
    }
    if (r.has("type")) {
      if (r.has("bits") || r.has("group") || r.has("scheme"))
        bad_input("{}: a rule gives a ggml type or bits, not both", r.where());
      try {
        t.type = ggml_type_from_name(r["type"].string());
      } catch (const Error& e) {
        throw Error(e.exit_code, r["type"].where() + ": " + e.what());
      }
    } else {
      t.spec.bits = (int)r["bits"].integer(2, 8);
      t.spec.group = (int)r.integer("group", 1, 1 << 20, 0);
      t.spec.gran = t.spec.group ? Gran::group : Gran::row;
      const std::string scheme = r.string("scheme", t.spec.group ? "asym" : "sym");
      if (scheme != "sym" && scheme != "asym") bad_input("{}: scheme '{}' (sym, asym)", r.where(), scheme);
      t.spec.scheme = scheme_from_string(scheme);
    }
    out.push_back(std::move(t));
  }
  return out;
}

const TensorRule* find_rule(const std::vector<TensorRule>& rules, const std::string& name) {
  for (const TensorRule& r : rules)
    if (std::regex_search(name, r.re)) return &r;
  return nullptr;
}

namespace {

void run_rules(PassContext& ctx, const nlohmann::json& p) {
  const std::vector<TensorRule> rules = parse_tensor_rules(JsonAt(p["rules"], "rules"));
  Model& m = ctx.model;
  nlohmann::json applied = ctx.plan.notes.contains("rules") ? ctx.plan.notes["rules"] : nlohmann::json::object();
  auto apply = [&](const std::string& name, const Tensor& w) {
    const TensorRule* r = find_rule(rules, name);
    if (!r) return;
    TQ_CHECK_INPUT(!r->type, "rules: '{}' gives a ggml type, which only a GGUF recipe's gguf pass takes", r->match);
    if (ctx.plan.ggml.count(name))
      bad_input("rules: {} is in a ggml type already; a GGUF recipe takes {{\"match\", \"type\"}} rules", name);
    ctx.plan.weights[name] = fit_weight(w, r->spec, {});
    applied[name] = r->match;
  };
  for (int l : ctx.layers())
    for (auto& nl : block_linears(m.blocks[l])) apply(weight_name(l, nl.slot), nl.lin->w);
  if (ctx.head() && !m.cfg.tied_head && !m.head.w.empty()) apply("output.weight", m.head.w);
  ctx.plan.notes["rules"] = applied;
}

}  // namespace

PassDef rules_pass() {
  return {"rules",
          "per-tensor rules applied after the passes chose: {\"match\": REGEX, \"bits\": B, \"group\": G} "
          "re-quantizes the matching weights round-to-nearest (the recipe's \"rules\" list becomes this step)",
          {{"rules", nlohmann::json::array(), "the rules, in order (the first match applies)"}},
          run_rules, [](const nlohmann::json&) { return true; }};
}

}  // namespace tq
