#include "quant/plan.h"

#include <atomic>
#include <set>

#include "core/checked.h"
#include "core/error.h"
#include "io/ggml_types.h"
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

QuantSpec spec_from_json(const JsonAt& j) {
  j.object();
  QuantSpec s;
  s.bits = (int)j["bits"].integer(0, 32);
  try {
    s.scheme = scheme_from_string(j["scheme"].string());
    s.gran = gran_from_string(j["gran"].string());
  } catch (const Error& e) {
    j.fail("{}", e.what());
  }
  s.group = (int)j.integer("group", 1, 1 << 30, 0);
  if (s.gran == Gran::group && s.group <= 0) j.fail("group granularity needs a positive group size");
  s.dynamic = j.boolean("dynamic", false);
  s.calibrator = j.string("calibrator", "");
  auto floats = [&](const char* k) { return j.has(k) ? j[k].floats() : std::vector<float>{}; };
  s.scale = floats("scale");
  s.zero = floats("zero");
  s.pre_inv = floats("pre_inv");
  s.pre_shift = floats("pre_shift");
  for (size_t i = 0; i < s.scale.size(); i++)
    if (!(s.scale[i] > 0)) j["scale"][i].fail("a step must be positive, got {}", s.scale[i]);
  if (s.enabled()) {
    if (s.bits > 8 || (s.scheme == Scheme::sym && s.bits < 2))
      j["bits"].fail("{} bits: quantized codes have 2 to 8 bits (1 to 8 asymmetric), 0 or 16+ is float", s.bits);
    if (s.dynamic && s.gran == Gran::col)
      j["gran"].fail("dynamic quantization is per row (token), row and group, or per tensor, not per column");
    if (s.scheme == Scheme::asym && s.zero.size() != s.scale.size())
      j.fail("an asymmetric quantizer needs a zero point for each of its {} steps, has {}", s.scale.size(),
             s.zero.size());
  }
  if (!s.zero.empty() && s.zero.size() != s.scale.size())  // a zero point belongs to a step, whatever the scheme
    j["zero"].fail("has {} zero points for {} steps", s.zero.size(), s.scale.size());
  if (!s.pre_shift.empty() && s.pre_shift.size() != s.pre_inv.size())
    j["pre_shift"].fail("has {} channels, pre_inv {}", s.pre_shift.size(), s.pre_inv.size());
  return s;
}

nlohmann::json QuantPlan::to_json(bool with_weight_params) const {
  nlohmann::json w = nlohmann::json::object(), st = nlohmann::json::object();
  for (auto& [k, v] : weights) w[k] = spec_to_json(v, with_weight_params);
  for (auto& [k, v] : sites) st[k] = spec_to_json(v, true);
  nlohmann::json j = {{"format", "tquant-plan-1"}, {"passes", passes}, {"notes", notes}, {"weights", w}, {"sites", st}};
  if (!ggml.empty()) {
    nlohmann::json g = nlohmann::json::object();
    for (auto& [k, t] : ggml) g[k] = ggml_type_info(t.type)->name;
    j["ggml"] = g;
  }
  return j;
}

QuantPlan QuantPlan::from_json(const JsonAt& j) {
  if (j.object().string("format", "") != "tquant-plan-1") j.fail("not a tquant plan (format tquant-plan-1)");
  QuantPlan p;
  p.passes = j.has("passes") ? j["passes"].json() : nlohmann::json::array();
  p.notes = j.has("notes") ? j["notes"].json() : nlohmann::json::object();
  for (auto& [k, v] : j["weights"].items()) p.weights[k] = spec_from_json(v);
  for (auto& [k, v] : j["sites"].items()) p.sites[k] = spec_from_json(v);
  if (j.has("ggml"))
    for (auto& [k, v] : j["ggml"].items()) {  // tensor name -> ggml type name
      if (p.weights.count(k)) v.fail("'{}' has both a quantizer and a ggml type", k);
      p.ggml[k] = GgmlTensor{ggml_type_from_name(v.string()), {}};
    }
  return p;
}

// Values per row a site's quantizer sees (0: it varies, the keys of probs).
static int64_t site_cols(const Config& c, Site s) {
  switch (s) {
    case Site::qkv_in: case Site::up_in: case Site::head_in: return c.dim;
    case Site::q: case Site::o_in: return c.q_dim();
    case Site::k: case Site::v: return c.kv_dim();
    case Site::down_in: return c.hidden;
    case Site::probs: return 0;
  }
  return 0;
}

void check_plan_sites(const QuantPlan& plan, const Config& c, const std::string& source) {
  for (auto& entry : plan.sites) {
    const std::string& key = entry.first;
    const QuantSpec& s = entry.second;
    auto fail = [&](const std::string& why) { bad_input("{}: sites.\"{}\": {}", source, key, why); };
    auto parsed = parse_site_key(key, c.n_layers);
    if (!parsed)
      fail(fmt::format("unknown site (blk.N.qkv_in, q, k, v, probs, o_in, up_in, down_in with N below {}; head_in)",
                       c.n_layers));
    const Site site = parsed->first;
    const int64_t cols = site_cols(c, site);
    if (!s.pre_inv.empty() && (int64_t)s.pre_inv.size() != cols)
      fail(fmt::format("pre_inv has {} channels, the site has {}", s.pre_inv.size(), cols));
    if (!s.enabled() || s.dynamic) continue;
    if (s.gran == Gran::row || s.gran == Gran::group || (s.gran == Gran::col && cols == 0))
      fail(fmt::format("static {} parameters cannot fit a site whose rows are tokens", to_string(s.gran)));
    const int64_t need = s.gran == Gran::tensor ? 1 : cols;
    if ((int64_t)s.scale.size() != need)
      fail(fmt::format("a static {} quantizer needs {} steps, has {}", to_string(s.gran), need, s.scale.size()));
  }
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
    auto g = plan.ggml.find(nt.name);
    if (g != plan.ggml.end()) {
      *nt.t = decode_ggml(g->second, nt.t->shape);
      continue;
    }
    auto it = plan.weights.find(nt.name);
    if (it == plan.weights.end() || !it->second.enabled()) continue;
    Tensor& t = *nt.t;
    fake_quant(t.ptr(), (int)t.rows(), (int)t.cols(), it->second);
  }
  std::set<std::string> names;
  for (auto& nt : named_tensors(q)) names.insert(nt.name);
  for (auto& [name, spec] : plan.weights)
    if (!names.count(name)) bad_input("plan quantizes '{}', which the model does not have", name);
  for (auto& [name, t] : plan.ggml)
    if (!names.count(name)) bad_input("plan stores '{}' in a ggml type, but the model does not have it", name);
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
    auto g = plan.ggml.find(nt.name);
    if (g != plan.ggml.end()) {
      bits = 8.0 * (double)g->second.data.size();
    } else if (it != plan.weights.end() && it->second.enabled()) {
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
