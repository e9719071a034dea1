// Recipes: built-in names expand to the same JSON a user's recipe file holds,
// and one reader checks both against the pass table.
#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "core/json.h"
#include "core/mmap.h"
#include "io/ggml_types.h"
#include "passes/pass.h"
#include "passes/rules.h"

namespace tq {

nlohmann::json per_token_rtn_step(int w_bits, int a_bits, const std::string& sites) {
  return {{"pass", "rtn"}, {"w_bits", w_bits}, {"a_bits", a_bits}, {"a_scheme", "sym"},
          {"a_gran", "token"}, {"sites", sites}, {"head", false}};
}

const std::vector<RecipeNumber>& recipe_numbers() {
  static const std::vector<RecipeNumber> numbers = {
      {'X', "weight bits", 2, 8},
      {'Y', "activation bits", 2, 8},
      {'B', "weight bits", 2, 8},
      {'G', "group size", 1, 1 << 20},
      {'K', "bits of the boost base (3: b3g128, 4: b4g64)", 3, 4},
      {'T', "a ggml type by name (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K, F16)", 0, 0},
  };
  return numbers;
}

const std::vector<BuiltinRecipe>& builtin_recipes() {
  using N = const std::map<char, int>&;
  using J = nlohmann::json;
  auto rtn = [](int w, int a) { return J{{"pass", "rtn"}, {"w_bits", w}, {"a_bits", a}}; };
  auto grouped = [rtn](int w, int a, int g) {
    J step = rtn(w, a);
    step["w_gran"] = "group";
    step["group"] = g;
    step["w_scheme"] = "asym";
    return step;
  };
  auto gptq_like = [](const char* pass, int b, int g) { return J{{"pass", pass}, {"bits", b}, {"group", g}}; };
  auto repquant = [](int w, int a) { return J{{"pass", "repquant"}, {"w_bits", w}, {"a_bits", a}}; };
  auto boost = [](const char* feature, int k) {
    return J::array({{{"pass", "boost"}, {"feature", feature}, {"base", k == 4 ? "b4g64" : "b3g128"}, {"stop", 2},
                      {"top_m", 2}}});
  };
  // docs/methods.md §0.6: the fold methods fold at the norm-fed sites and quantize the rest per token.
  static const std::vector<BuiltinRecipe> recipes = {
      {"wXa16-rtn", "round-to-nearest weights per row, float activations",
       [=](N n) { return J::array({rtn(n.at('X'), 0)}); }},
      {"wXa16-gG-rtn", "round-to-nearest weights per group of G (asymmetric), float activations",
       [=](N n) { return J::array({grouped(n.at('X'), 0, n.at('G'))}); }},
      {"wXaY-rtn", "round-to-nearest weights per row, activations per tensor from a calibrator (--calibrator)",
       [=](N n) { return J::array({rtn(n.at('X'), n.at('Y'))}); }},
      {"wXaY-gG-rtn", "round-to-nearest weights per group of G, activations per tensor",
       [=](N n) { return J::array({grouped(n.at('X'), n.at('Y'), n.at('G'))}); }},
      {"wXaY-smoothquant", "SmoothQuant at qkv_in and up_in (alpha 0.5; --set search=true picks it), then per-row "
                           "weights and per-token activations",
       [](N n) {
         return J::array({{{"pass", "smoothquant"}, {"w_bits", n.at('X')}, {"a_bits", n.at('Y')}},
                          per_token_rtn_step(n.at('X'), n.at('Y'), "qkv_in,o_in,up_in,down_in,q,k,v")});
       }},
      {"wXaY-outliertune", "OutlierTune: symmetrization and step fold at qkv_in and up_in (and down_in of gated "
                           "MLPs, k balanced against q [ours]), per-token activations at o_in, down_in, and per token "
                           "and head, asymmetric, at q, k, v [ours]",
       [](N n) {
         J rtn = per_token_rtn_step(n.at('X'), n.at('Y'), "o_in,down_in,q,k,v");
         rtn["a_gran"] = "token_head";
         rtn["qkv_scheme"] = "asym";
         return J::array({{{"pass", "symmetrize"}},
                          {{"pass", "step_fold"}, {"w_bits", n.at('X')}, {"a_bits", n.at('Y')}}, rtn});
       }},
      {"wXaY-repquant", "RepQuant: learned per-channel clipping at qkv_in and up_in folded to per-tensor, log-sqrt2 "
                        "softmax, block-wise weight reconstruction",
       [=](N n) { return J::array({repquant(n.at('X'), n.at('Y'))}); }},
      {"wXaY-repqvit", "RepQ-ViT: repquant with the percentile-MSE bounds and no reconstruction (the ablation)",
       [=](N n) {
         J step = repquant(n.at('X'), n.at('Y'));
         step["clip_steps"] = 0;
         step["recon_steps"] = 0;
         return J::array({step});
       }},
      {"wB-hqq-gG", "HQQ weight-only quantization, B bits per group of G",
       [](N n) { return J::array({{{"pass", "hqq"}, {"bits", n.at('B')}, {"group", n.at('G')}}}); }},
      {"wBaY-hqq-gG", "HQQ weights, linear inputs quantized per token, symmetric: integer dot products (K4-a8)",
       [](N n) {
         return J::array({{{"pass", "hqq"}, {"bits", n.at('B')}, {"group", n.at('G')}},
                          per_token_rtn_step(0, n.at('Y'), "qkv_in,o_in,up_in,down_in")});
       }},
      {"wK-kurtboost", "KurtBoost: HQQ at the base rung; layers whose weight kurtosis jumps get 2 rungs more (top 2)",
       [=](N n) { return boost("kurtosis", n.at('K')); }},
      {"wK-sensiboost", "SensiBoost: the same, by activation sensitivity (needs --calib)",
       [=](N n) { return boost("sensitivity", n.at('K')); }},
      {"wB-gptq-gG", "GPTQ: B-bit weights in groups of G with a zero point, errors compensated "
                     "column by column with the calibration Hessian",
       [=](N n) { return J::array({gptq_like("gptq", n.at('B'), n.at('G'))}); }},
      {"wB-awq-gG", "AWQ: activation-aware channel scales, then round-to-nearest in groups of G",
       [=](N n) {
         J rtn = {{"pass", "rtn"}, {"w_bits", n.at('B')}, {"w_scheme", "asym"}, {"a_bits", 0}, {"head", false},
                  {"w_gran", "group"}, {"group", n.at('G')}};
         return J::array({gptq_like("awq", n.at('B'), n.at('G')), rtn});
       }},
      {"wB-awq-gptq-gG", "AWQ's scales, then GPTQ",
       [=](N n) { return J::array({gptq_like("awq", n.at('B'), n.at('G')), gptq_like("gptq", n.at('B'), n.at('G'))}); }},
      {"auto-gguf", "a ggml type and method per tensor within --max-bytes N or --max-bpw B (export with --gguf)",
       [](N) { return J::array({{{"pass", "gguf"}}}); }},
      {"gguf-T", "every tensor in ggml type T with llama.cpp's rules and the activation-weighted scale search",
       [](N n) { return J::array({{{"pass", "gguf"}, {"type", ggml_type_info(n.at('T'))->name}}}); }},
      {"gguf-T-ref", "the same with ggml's reference encoders, as llama-quantize without an imatrix",
       [](N n) {
         return J::array({{{"pass", "gguf"}, {"type", ggml_type_info(n.at('T'))->name}, {"imatrix", false},
                           {"awq", false}}});
       }},
      {"wB-budget", "the budget allocator: the HQQ rung per linear that minimises the summed output KL within "
                    "--budget BPW (default B + 0.5)",
       [](N n) { return J::array({{{"pass", "budget"}, {"budget", n.at('B') + 0.5}}}); }},
  };
  return recipes;
}

std::string recipe_help() {
  std::string s = "Built-in recipes, each capital letter a number:\n";
  for (auto& n : recipe_numbers())
    s += n.max > n.min ? fmt::format("  {}  {}, {}..{}\n", n.letter, n.what, n.min, n.max)
                       : fmt::format("  {}  {}\n", n.letter, n.what);
  for (auto& r : builtin_recipes()) s += fmt::format("  {:<18} {}\n", r.pattern, r.help);
  s += "Or a JSON file: {\"name\": ..., \"passes\": [{\"pass\": NAME, PARAM: VALUE, ...}, "
       "{\"recipe\": BUILT-IN}, ...],\n  \"rules\": [{\"match\": REGEX, \"bits\": B, \"group\": G}, "
       "{\"match\": REGEX, \"type\": GGML_TYPE}, ...]}\n(rules: the first match per tensor applies after the passes "
       "chose; types for GGUF recipes) with the passes:\n";
  for (auto& p : all_passes()) s += fmt::format("  {:<18} {}\n", p.name, p.help);
  return s;
}

namespace {

const PassDef& find_pass(const std::string& name) {
  std::string names;
  for (auto& p : all_passes()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  bad_input("unknown pass '{}' (passes: {})", name, names);
}

// Checks a step's parameters against the pass's table and fills in defaults.
nlohmann::json complete_params(const PassDef& p, const nlohmann::json& given) {
  nlohmann::json out = nlohmann::json::object();
  for (auto& [k, v] : given.items()) {
    if (k == "pass") continue;
    bool known = false;
    for (auto& d : p.params) known |= d.name == k;
    if (!known) {
      std::string names;
      for (auto& d : p.params) names += (names.empty() ? "" : ", ") + d.name;
      bad_input("pass '{}' has no parameter '{}' (parameters: {})", p.name, k, names);
    }
  }
  for (auto& d : p.params) {
    nlohmann::json v = given.contains(d.name) ? given[d.name] : d.fallback;
    bool type_ok = (d.fallback.is_number_integer() && v.is_number_integer()) ||
                   (d.fallback.is_number_float() && v.is_number()) || (d.fallback.is_string() && v.is_string()) ||
                   (d.fallback.is_boolean() && v.is_boolean()) || (d.fallback.is_array() && v.is_array());
    if (!type_ok)
      bad_input("pass '{}' parameter '{}' must be {}, got {}", p.name, d.name,
                d.fallback.is_number_integer() ? "an integer"
                : d.fallback.is_number()       ? "a number"
                : d.fallback.is_string()       ? "a string"
                : d.fallback.is_array()        ? "a list"
                                               : "true or false",
                v.dump());
    if (v.is_number() && (v.get<double>() < d.min || v.get<double>() > d.max))
      bad_input("pass '{}' parameter '{}' = {} is out of range [{}, {}]", p.name, d.name, v.dump(), d.min, d.max);
    if (v.is_string() && !d.choices.empty() &&
        std::find(d.choices.begin(), d.choices.end(), v.get<std::string>()) == d.choices.end())
      bad_input("pass '{}' parameter '{}' = '{}' is not one of: {}", p.name, d.name, v.get<std::string>(),
                fmt::format("{}", fmt::join(d.choices, ", ")));
    out[d.name] = v;
  }
  return out;
}

// The numbers of `name` when it has the shape of `pattern` (an upper-case letter of the pattern
// matches a run of digits), each range-checked; nullopt when the shape differs.
std::optional<std::map<char, int>> match(std::string_view pattern, std::string_view name) {
  std::vector<std::pair<char, std::string_view>> digits;
  size_t i = 0;
  for (char c : pattern) {
    if (c >= 'A' && c <= 'Z') {
      size_t j = i;
      auto in_run = [&](char x) { return c == 'T' ? std::isalnum((unsigned char)x) || x == '_' : std::isdigit((unsigned char)x); };
      while (j < name.size() && in_run(name[j])) j++;
      if (j == i) return std::nullopt;
      digits.push_back({c, name.substr(i, j - i)});
      i = j;
    } else {
      if (i >= name.size() || name[i] != c) return std::nullopt;
      i++;
    }
  }
  if (i != name.size()) return std::nullopt;
  std::map<char, int> out;
  for (auto& [letter, text] : digits) {
    if (letter == 'T') {  // a name, not a number
      out[letter] = (int)ggml_type_from_name(std::string(text));
      continue;
    }
    const RecipeNumber* n = nullptr;
    for (auto& r : recipe_numbers())
      if (r.letter == letter) n = &r;
    TQ_ASSERT(n, "recipe pattern {} uses the letter {}, which recipe_numbers() does not define", pattern, letter);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || v < n->min || v > n->max)
      bad_input("recipe {}: {} ({}) must be {}..{}, not {}", name, n->what, letter, n->min, n->max, text);
    out[letter] = (int)v;
  }
  return out;
}

std::optional<Recipe> builtin_recipe(const std::string& name) {
  for (auto& r : builtin_recipes())
    if (auto numbers = match(r.pattern, name))
      return recipe_from_json({{"name", name}, {"passes", r.passes(*numbers)}}, name);
  return std::nullopt;
}

std::string builtin_patterns() {
  std::string s;
  for (auto& r : builtin_recipes()) s += (s.empty() ? "" : ", ") + std::string(r.pattern);
  return s;
}

}  // namespace

void add_rules(Recipe& r, const JsonAt& rules, bool first) {
  nlohmann::json types = nlohmann::json::array(), bits = nlohmann::json::array();
  const std::vector<TensorRule> parsed = parse_tensor_rules(rules);
  for (size_t i = 0; i < parsed.size(); i++) (parsed[i].type ? types : bits).push_back(rules[i].json());
  bool gguf = false;
  for (auto& [p, params] : r.steps)
    if (p->name == "gguf") {
      gguf = true;
      nlohmann::json all = first ? types : params["tensor_types"];
      for (auto& t : first ? params["tensor_types"] : types) all.push_back(t);
      params["tensor_types"] = all;
    }
  if (!types.empty() && !gguf) bad_input("{}: a ggml \"type\" rule needs a GGUF recipe (a gguf step)", rules.where());
  if (!bits.empty() && gguf)
    bad_input("{}: a GGUF recipe takes {{\"match\", \"type\"}} rules, not bits", rules.where());
  if (!bits.empty()) r.steps.push_back({&find_pass("rules"), complete_params(find_pass("rules"), {{"rules", bits}})});
}

Recipe recipe_from_json(const nlohmann::json& j, const std::string& name) {
  if (!j.is_object() || !j.contains("passes") || !j["passes"].is_array() || j["passes"].empty())
    bad_input("recipe {} needs a non-empty \"passes\" list", name);
  Recipe r;
  r.name = JsonAt(j, "recipe " + name).string("name", name);
  for (size_t i = 0; i < j["passes"].size(); i++) {
    const nlohmann::json& step = j["passes"][i];
    if (step.is_object() && step.contains("recipe")) {  // a built-in's passes in place
      if (step.size() != 1 || !step["recipe"].is_string())
        bad_input("recipe {}: a \"recipe\" step names a built-in recipe and nothing else", name);
      auto inner = builtin_recipe(step["recipe"].get<std::string>());
      if (!inner)
        bad_input("recipe {}: '{}' is not a built-in recipe ({})", name, step["recipe"].get<std::string>(),
                  builtin_patterns());
      r.steps.insert(r.steps.end(), inner->steps.begin(), inner->steps.end());
      continue;
    }
    if (!step.is_object() || !step.contains("pass") || !step["pass"].is_string())
      bad_input("recipe {}: every step needs a \"pass\" name", name);
    try {
      const PassDef& p = find_pass(step["pass"].get<std::string>());
      r.steps.push_back({&p, complete_params(p, step)});
    } catch (const Error& e) {
      throw Error(e.exit_code, fmt::format("recipe {}: passes[{}]: {}", name, i, e.what()));
    }
  }
  if (j.contains("rules")) add_rules(r, JsonAt(j, "recipe " + name)["rules"], false);
  return r;
}

Recipe parse_recipe(const std::string& spec) {
  if (auto r = builtin_recipe(spec)) return *r;
  if (file_exists(spec)) return recipe_from_json(read_json_file(spec), spec);
  bad_input("unknown recipe '{}' (built-in: {}; or a JSON recipe file)", spec, builtin_patterns());
}

void override_param(Recipe& r, const std::string& key, const nlohmann::json& value) {
  bool used = false;
  for (auto& [p, params] : r.steps)
    for (auto& d : p->params)
      if (d.name == key) {
        nlohmann::json given = params;
        given[key] = value;
        params = complete_params(*p, given);
        used = true;
      }
  if (!used) bad_input("no pass of recipe {} takes '{}'", r.name, key);
}

void run_recipe(const Recipe& r, PassContext& ctx) {
  for (auto& [p, params] : r.steps) {
    p->run(ctx, params);
    nlohmann::json rec = params;
    rec["pass"] = p->name;
    ctx.plan.passes.push_back(rec);
  }
}

}  // namespace tq
