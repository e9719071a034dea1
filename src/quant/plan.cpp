#include "quant/plan.h"

#include <atomic>

#include "core/error.h"
#include "quant/observer.h"

namespace tq {

nlohmann::json spec_to_json(const QuantSpec& s, bool with_params) {
  nlohmann::json j = {{"bits", s.bits}, {"scheme", to_string(s.scheme)}, {"gran", to_string(s.gran)}};
  if (s.gran == Gran::group) j["group"] = s.group;
  if (s.dynamic) j["dynamic"] = true;
  if (!s.calibrator.empty()) j["calibrator"] = s.calibrator;
  if (with_params) {
    if (!s.scale.empty()) j["scale"] = s.scale;
    if (!s.zero.empty()) j["zero"] = s.zero;
  }
  if (!s.pre_inv.empty()) j["pre_inv"] = s.pre_inv;
  if (!s.pre_shift.empty()) j["pre_shift"] = s.pre_shift;
  return j;
}

QuantSpec spec_from_json(const nlohmann::json& j) {
  if (!j.is_object()) bad_input("a quantizer spec must be a JSON object");
  QuantSpec s;
  s.bits = j.at("bits").get<int>();
  if (s.bits < 0 || s.bits > 32) bad_input("quantizer bits {} out of range", s.bits);
  s.scheme = scheme_from_string(j.at("scheme").get<std::string>());
  s.gran = gran_from_string(j.at("gran").get<std::string>());
  s.group = j.value("group", 0);
  if (s.gran == Gran::group && s.group <= 0) bad_input("group granularity needs a positive group size");
  s.dynamic = j.value("dynamic", false);
  s.calibrator = j.value("calibrator", "");
  auto floats = [&](const char* k) {
    return j.contains(k) ? j[k].get<std::vector<float>>() : std::vector<float>{};
  };
  s.scale = floats("scale");
  s.zero = floats("zero");
  s.pre_inv = floats("pre_inv");
  s.pre_shift = floats("pre_shift");
  return s;
}

nlohmann::json QuantPlan::to_json(bool with_weight_params) const {
  nlohmann::json w = nlohmann::json::object(), st = nlohmann::json::object();
  for (auto& [k, v] : weights) w[k] = spec_to_json(v, with_weight_params);
  for (auto& [k, v] : sites) st[k] = spec_to_json(v, true);
  return {{"format", "tquant-plan-1"}, {"passes", passes}, {"notes", notes}, {"weights", w}, {"sites", st}};
}

QuantPlan QuantPlan::from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("format", "") != "tquant-plan-1") bad_input("not a tquant plan (format tquant-plan-1)");
  QuantPlan p;
  p.passes = j.value("passes", nlohmann::json::array());
  p.notes = j.value("notes", nlohmann::json::object());
  for (auto& [k, v] : j.at("weights").items()) p.weights[k] = spec_from_json(v);
  for (auto& [k, v] : j.at("sites").items()) p.sites[k] = spec_from_json(v);
  return p;
}

SimHook::SimHook(const QuantPlan& plan, int n_layers) : specs_(n_layers + 1) {
  for (auto& row : specs_) row.fill(nullptr);
  for (auto& [key, spec] : plan.sites) {
    auto site = parse_site_key(key, n_layers);
    if (!site) bad_input("plan names an unknown site '{}'", key);
    specs_[site->second + 1][(int)site->first] = &spec;
  }
}

void SimHook::forward(Site site, int layer, float* x, int rows, int cols) {
  const QuantSpec* s = specs_[layer + 1][(int)site];
  if (!s) return;
  int64_t n = fake_quant(x, rows, cols, *s);
  if (n) std::atomic_ref<int64_t>(saturated).fetch_add(n, std::memory_order_relaxed);
}

Model simulate_weights(const Model& m, const QuantPlan& plan) {
  Model q = m;
  for (auto& nt : named_tensors(q)) {
    auto it = plan.weights.find(nt.name);
    if (it == plan.weights.end() || !it->second.enabled()) continue;
    Tensor& t = *nt.t;
    fake_quant(t.ptr(), (int)t.rows(), (int)t.cols(), it->second);
  }
  for (auto& [name, spec] : plan.weights) {
    bool found = false;
    for (auto& nt : named_tensors(q)) found |= nt.name == name;
    if (!found) bad_input("plan quantizes '{}', which the model does not have", name);
  }
  return q;
}

SizeInfo plan_size(const Model& m, const QuantPlan& plan) {
  SizeInfo s;
  double wbits = 0, wcount = 0;
  for (auto& nt : named_tensors(const_cast<Model&>(m))) {
    int64_t n = nt.t->numel();
    s.fp32_bytes += n * 4;
    auto it = plan.weights.find(nt.name);
    double bits = 32.0 * n;
    if (it != plan.weights.end() && it->second.enabled()) {
      const QuantSpec& q = it->second;
      int64_t np = q.n_params((int)nt.t->rows(), (int)nt.t->cols());
      // Parameters as stored for a runtime: f16 scale (+ f16 zero) per row or group.
      bits = (double)q.bits * n + np * (q.scheme == Scheme::asym ? 32.0 : 16.0);
    }
    if (nt.t->ndim() == 2 && nt.name.find("embd") == std::string::npos) {
      wbits += bits;
      wcount += n;
    }
    s.model_bytes += (int64_t)std::ceil(bits / 8);
  }
  s.bits_per_weight = wcount ? wbits / wcount : 32;
  return s;
}

}  // namespace tq
