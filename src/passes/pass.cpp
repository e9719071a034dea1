#include "passes/pass.h"

#include <fmt/format.h>

#include <regex>

#include "core/error.h"
#include "core/mmap.h"
#include "core/progress.h"

namespace tq {

PassDef rtn_pass();          // passes/rtn.cpp
PassDef smoothquant_pass();  // passes/smoothquant.cpp
PassDef symmetrize_pass();   // passes/outliertune.cpp
PassDef step_fold_pass();    // passes/outliertune.cpp
PassDef hqq_pass();          // passes/hqq.cpp
PassDef boost_pass();        // passes/hqq.cpp
PassDef budget_pass();       // passes/hqq.cpp
PassDef repquant_pass();     // passes/repquant.cpp
PassDef gguf_pass();         // passes/gguf_quant.cpp
PassDef gptq_pass();         // passes/gptq.cpp
PassDef awq_pass();          // passes/awq.cpp

const std::vector<PassDef>& all_passes() {
  static const std::vector<PassDef> passes = {rtn_pass(),       smoothquant_pass(), symmetrize_pass(), step_fold_pass(),
                                              hqq_pass(),       boost_pass(),       budget_pass(),
                                              repquant_pass(),   gguf_pass(),        gptq_pass(),
                                              awq_pass()};
  return passes;
}

void run_calibration(const Model& m, const CalibData& calib, Hooks& hooks) {
  Workspace ws;
  Progress prog("calibrate", (int64_t)calib.batches.size(), "batch");
  for (const Batch& b : calib.batches) {
    forward(m, b.input(), ws, hooks);
    prog.add();
  }
}

const SiteStats& site_stats(const std::map<std::string, SiteStats>& stats, Site site, int layer) {
  auto it = stats.find(site_key(site, layer));
  if (it == stats.end()) bad_input("calibration never reached site {}", site_key(site, layer));
  return it->second;
}

void observe(const Model& m, const QuantPlan& plan, const CalibData& calib, Hooks& obs) {
  QuantPlan transforms;
  for (auto& [key, s] : plan.sites)
    if (!s.pre_inv.empty()) {
      QuantSpec t;
      t.bits = 0;
      t.pre_inv = s.pre_inv;
      t.pre_shift = s.pre_shift;
      transforms.sites[key] = t;
    }
  SimHook sim(transforms, m.cfg.n_layers);
  HookChain chain(sim, obs);
  run_calibration(m, calib, chain);
}

const std::map<std::string, SiteStats>& PassContext::stats() {
  if (!stats_) {
    TQ_CHECK_INPUT(!calib.empty(), "this recipe needs calibration data (--calib)");
    Observer obs;
    observe(model, plan, calib, obs);
    stats_ = std::make_unique<std::map<std::string, SiteStats>>(std::move(obs.stats));
  }
  return *stats_;
}

static const PassDef& find_pass(const std::string& name) {
  std::string names;
  for (auto& p : all_passes()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  bad_input("unknown pass '{}' (passes: {})", name, names);
}

// Checks a step's parameters against the pass's table and fills in defaults.
static nlohmann::json complete_params(const PassDef& p, const nlohmann::json& given) {
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

Recipe recipe_from_json(const nlohmann::json& j, const std::string& name) {
  if (!j.is_object() || !j.contains("passes") || !j["passes"].is_array() || j["passes"].empty())
    bad_input("recipe {} needs a non-empty \"passes\" list", name);
  Recipe r;
  r.name = j.value("name", name);
  for (auto& step : j["passes"]) {
    if (!step.is_object() || !step.contains("pass") || !step["pass"].is_string())
      bad_input("recipe {}: every step needs a \"pass\" name", name);
    const PassDef& p = find_pass(step["pass"].get<std::string>());
    r.steps.push_back({&p, complete_params(p, step)});
  }
  return r;
}

std::vector<std::string> builtin_recipe_names() {
  return {"wXaY-rtn (X, Y = weight/activation bits 2..8; a16 = float activations)", "wXa16-gG-rtn (group G)",
          "wXaY-smoothquant", "wXaY-outliertune", "wXaY-repquant", "wXaY-repqvit (RepQ-ViT: repquant without learning)",
          "wB-hqq-gG (HQQ, B = 2, 3, 4, 8; G = 32, 64, 128 or any group)",
          "w4-kurtboost, w3-kurtboost, w4-sensiboost, w3-sensiboost (base b4g64 / b3g128, stop 2, top_m 2)",
          "wB-budget (the allocator at --budget BPW; default: B + 0.5)",
          "wB-gptq-gG, wB-awq-gG, wB-awq-gptq-gG (GPTQ and/or AWQ, B bits, groups of G with a zero point; G = 0: "
          "per row)",
          "auto-gguf (a ggml type and method per tensor within --max-bytes N or --max-bpw B)",
          "gguf-TYPE (every tensor in ggml TYPE with llama.cpp's rules, e.g. gguf-Q4_0; gguf-TYPE-ref: "
          "ggml's reference encoders, as llama-quantize without an imatrix)"};
}

nlohmann::json per_token_rtn_step(int w_bits, int a_bits, const std::string& sites) {
  return {{"pass", "rtn"}, {"w_bits", w_bits}, {"a_bits", a_bits}, {"a_scheme", "sym"},
          {"a_gran", "token"}, {"sites", sites}, {"head", false}};
}

Recipe parse_recipe(const std::string& spec) {
  std::smatch m;
  static const std::regex rtn(R"(w(\d+)a(\d+)(?:-g(\d+))?-rtn)");
  if (std::regex_match(spec, m, rtn)) {
    int wb = std::stoi(m[1]), ab = std::stoi(m[2]);
    if (wb < 2 || wb > 8) bad_input("recipe {}: weight bits must be 2..8", spec);
    if (!((ab >= 2 && ab <= 8) || ab == 16)) bad_input("recipe {}: activation bits must be 2..8 or 16 (float)", spec);
    nlohmann::json step = {{"pass", "rtn"}, {"w_bits", wb}, {"a_bits", ab == 16 ? 0 : ab}};
    if (m[3].matched) {
      step["w_gran"] = "group";
      step["group"] = std::stoi(m[3]);
      step["w_scheme"] = "asym";
    }
    return recipe_from_json({{"name", spec}, {"passes", {step}}}, spec);
  }
  // methods.md §0.6: the norm-fed sites get the method's fold; the rest is per-token dynamic.
  static const std::regex method(R"(w(\d+)a(\d+)-(smoothquant|outliertune))");
  if (std::regex_match(spec, m, method)) {
    int wb = std::stoi(m[1]), ab = std::stoi(m[2]);
    if (wb < 2 || wb > 8 || ab < 2 || ab > 8) bad_input("recipe {}: weight and activation bits must be 2..8", spec);
    nlohmann::json steps;
    if (m[3] == "smoothquant") {
      steps = {{{"pass", "smoothquant"}, {"w_bits", wb}, {"a_bits", ab}},
               per_token_rtn_step(wb, ab, "qkv_in,o_in,up_in,down_in,q,k,v")};
    } else {
      steps = {{{"pass", "symmetrize"}},
               {{"pass", "step_fold"}, {"w_bits", wb}, {"a_bits", ab}},
               per_token_rtn_step(wb, ab, "o_in,down_in,q,k,v")};
    }
    return recipe_from_json({{"name", spec}, {"passes", steps}}, spec);
  }
  // methods.md §0.6 and §5.9: the repquant pass quantizes every site itself.
  static const std::regex rep(R"(w(\d+)a(\d+)-(repquant|repqvit))");
  if (std::regex_match(spec, m, rep)) {
    int wb = std::stoi(m[1]), ab = std::stoi(m[2]);
    if (wb < 2 || wb > 8 || ab < 2 || ab > 8) bad_input("recipe {}: weight and activation bits must be 2..8", spec);
    nlohmann::json step = {{"pass", "repquant"}, {"w_bits", wb}, {"a_bits", ab}};
    if (m[3] == "repqvit") {  // the ablation: θ frozen at the percentile-MSE bounds, no reconstruction
      step["clip_steps"] = 0;
      step["recon_steps"] = 0;
    }
    return recipe_from_json({{"name", spec}, {"passes", {step}}}, spec);
  }
  static const std::regex hqq(R"(w(\d+)-hqq-g(\d+))"), boost(R"(w([34])-(kurt|sensi)boost)"),
      budget(R"(w(\d+)-budget)");
  if (std::regex_match(spec, m, hqq)) {
    int b = std::stoi(m[1]);
    if (b < 2 || b > 8) bad_input("recipe {}: HQQ bits must be 2..8", spec);
    return recipe_from_json({{"name", spec}, {"passes", {{{"pass", "hqq"}, {"bits", b}, {"group", std::stoi(m[2])}}}}},
                            spec);
  }
  if (std::regex_match(spec, m, boost)) {  // methods.md §0.6
    nlohmann::json step = {{"pass", "boost"},
                           {"feature", m[2] == "kurt" ? "kurtosis" : "sensitivity"},
                           {"base", m[1] == "4" ? "b4g64" : "b3g128"},
                           {"stop", 2},
                           {"top_m", 2}};
    return recipe_from_json({{"name", spec}, {"passes", {step}}}, spec);
  }
  if (std::regex_match(spec, m, budget)) {
    int b = std::stoi(m[1]);
    if (b < 2 || b > 8) bad_input("recipe {}: bits must be 2..8", spec);
    return recipe_from_json({{"name", spec}, {"passes", {{{"pass", "budget"}, {"budget", b + 0.5}}}}}, spec);
  }
  static const std::regex gptq(R"(w(\d+)-(gptq|awq|awq-gptq)-g(\d+))");
  if (std::regex_match(spec, m, gptq)) {
    int b = std::stoi(m[1]), g = std::stoi(m[3]);
    if (b < 2 || b > 8) bad_input("recipe {}: weight bits must be 2..8", spec);
    auto step = [&](const char* pass) { return nlohmann::json{{"pass", pass}, {"bits", b}, {"group", g}}; };
    nlohmann::json steps = nlohmann::json::array();
    if (m[2] != "gptq") steps.push_back(step("awq"));
    if (m[2] == "awq") {
      nlohmann::json rtn = {{"pass", "rtn"}, {"w_bits", b}, {"w_scheme", "asym"}, {"a_bits", 0}, {"head", false}};
      if (g > 0) rtn["w_gran"] = "group", rtn["group"] = g;
      steps.push_back(rtn);
    } else {
      steps.push_back(step("gptq"));
    }
    return recipe_from_json({{"name", spec}, {"passes", steps}}, spec);
  }
  static const std::regex gguf(R"(gguf-([A-Za-z0-9_]+?)(-ref)?)");
  if (spec == "auto-gguf") return recipe_from_json({{"name", spec}, {"passes", {{{"pass", "gguf"}}}}}, spec);
  if (std::regex_match(spec, m, gguf)) {
    nlohmann::json step = {{"pass", "gguf"}, {"type", m[1].str()}};
    if (m[2].matched) step["imatrix"] = false, step["awq"] = false;
    return recipe_from_json({{"name", spec}, {"passes", {step}}}, spec);
  }
  if (file_exists(spec)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(spec));
    } catch (const nlohmann::json::exception& e) {
      bad_input("recipe file {}: {}", spec, e.what());
    }
    return recipe_from_json(j, spec);
  }
  bad_input("unknown recipe '{}' (built-in: {}; or a JSON recipe file)", spec,
            fmt::format("{}", fmt::join(builtin_recipe_names(), ", ")));
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
