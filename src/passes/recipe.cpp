// Recipes: built-in names expand to the same JSON a user's recipe file holds,
// and one reader checks both against the pass table.
#include <fmt/format.h>

#include <charconv>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "core/mmap.h"
#include "passes/pass.h"

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
      {'K', "weight bits of the boost base (3: b3g128, 4: b4g64)", 3, 4},
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
      {"wXaY-outliertune", "OutlierTune: symmetrization and step fold at qkv_in and up_in, per-token activations at "
                           "o_in, down_in, q, k, v",
       [](N n) {
         return J::array({{{"pass", "symmetrize"}},
                          {{"pass", "step_fold"}, {"w_bits", n.at('X')}, {"a_bits", n.at('Y')}},
                          per_token_rtn_step(n.at('X'), n.at('Y'), "o_in,down_in,q,k,v")});
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
      {"wK-kurtboost", "KurtBoost: HQQ at the base rung; layers whose weight kurtosis jumps get 2 rungs more (top 2)",
       [=](N n) { return boost("kurtosis", n.at('K')); }},
      {"wK-sensiboost", "SensiBoost: the same, by activation sensitivity (needs --calib)",
       [=](N n) { return boost("sensitivity", n.at('K')); }},
      {"wB-budget", "the budget allocator: the HQQ rung per linear that minimises the summed output KL within "
                    "--budget BPW (default B + 0.5)",
       [](N n) { return J::array({{{"pass", "budget"}, {"budget", n.at('B') + 0.5}}}); }},
  };
  return recipes;
}

std::string recipe_help() {
  std::string letters;
  for (auto& n : recipe_numbers())
    letters += fmt::format("{}{}: {} {}..{}", letters.empty() ? "" : "; ", n.letter, n.what, n.min, n.max);
  std::string s = fmt::format("Built-in recipes ({}):\n", letters);
  for (auto& r : builtin_recipes()) s += fmt::format("  {:<18} {}\n", r.pattern, r.help);
  s += "Or a JSON file: {\"name\": ..., \"passes\": [{\"pass\": NAME, PARAM: VALUE, ...}, "
       "{\"recipe\": BUILT-IN}, ...]}\nwith the passes:\n";
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
                   (d.fallback.is_boolean() && v.is_boolean());
    if (!type_ok)
      bad_input("pass '{}' parameter '{}' must be {}, got {}", p.name, d.name, d.fallback.type_name(), v.dump());
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
      while (j < name.size() && name[j] >= '0' && name[j] <= '9') j++;
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

Recipe recipe_from_json(const nlohmann::json& j, const std::string& name) {
  if (!j.is_object() || !j.contains("passes") || !j["passes"].is_array() || j["passes"].empty())
    bad_input("recipe {} needs a non-empty \"passes\" list", name);
  Recipe r;
  r.name = j.value("name", name);
  for (auto& step : j["passes"]) {
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
    const PassDef& p = find_pass(step["pass"].get<std::string>());
    r.steps.push_back({&p, complete_params(p, step)});
  }
  return r;
}

Recipe parse_recipe(const std::string& spec) {
  if (auto r = builtin_recipe(spec)) return *r;
  if (file_exists(spec)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(spec));
    } catch (const nlohmann::json::exception& e) {
      bad_input("recipe file {}: {}", spec, e.what());
    }
    return recipe_from_json(j, spec);
  }
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
