#include "runtime/runtime.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/gemm_int8.h"
#include "kernels/gemm_lowbit.h"
#include "quant/observer.h"

namespace tq {

namespace {

bool uniform(const QuantSpec& s) { return s.scheme == Scheme::sym || s.scheme == Scheme::asym; }

bool integer_zeros(const QuantSpec& s) {
  for (float z : s.zero)
    if (z != std::rint(z) || std::fabs(z) > 1e6f) return false;
  return true;
}

// The site quantizers whose codes the int8 kernels take (see runtime.h).
bool int8_site(const QuantSpec& s) {
  if (!s.enabled() || !uniform(s) || s.bits > 8) return false;
  if (s.dynamic) return s.gran == Gran::tensor || (s.gran == Gran::row && s.scheme == Scheme::sym);
  return s.gran == Gran::tensor && s.scale.size() == 1 && integer_zeros(s);
}

bool int8_weight(const QuantSpec& s) {
  return uniform(s) && s.bits <= 8 && (s.gran == Gran::row || s.gran == Gran::tensor) && integer_zeros(s);
}

// Why K4 cannot run a weight quantizer, or "" when it can.
std::string lowbit_problem(const QuantSpec& s) {
  if (!uniform(s)) return fmt::format("{} weights", to_string(s.scheme));
  if (s.bits > 8) return fmt::format("{}-bit weights", s.bits);
  if (s.gran == Gran::col) return "per-column weights";
  if (s.gran == Gran::group && s.group % LowbitPacked::kBlock)
    return fmt::format("group {} is not a multiple of {}", s.group, LowbitPacked::kBlock);
  for (float v : s.scale) {
    float h = f16_to_f32(f32_to_f16(v));
    if (!(std::fabs(h - v) <= std::ldexp(std::fabs(v), -10))) return fmt::format("scale {} has no fp16 form", v);
  }
  return "";
}

// One activation value to its code, counting a clamp as fake_quant does.
inline int8_t code_sym(float x, float step, int bits, int64_t& sat) {
  float r = std::rint(x / step);
  sat += r > (1 << (bits - 1)) - 1 || r < -(1 << (bits - 1));
  return (int8_t)q_sym(x, step, bits);
}
inline uint8_t code_asym(float x, float step, float zero, int bits, int64_t& sat) {
  float r = asym_code(x, step, zero);
  sat += r > (1 << bits) - 1 || r < 0;
  return (uint8_t)q_asym(x, step, zero, bits);
}

// K1–K3: codes of the activation by the site's quantizer, then the int8 GEMM.
struct Int8Exec final : LinearExec {
  Int8Packed w;
  QuantSpec act;  // the site's quantizer; its pre-transform stays in the hook
  Isa isa = Isa::automatic;
  std::shared_ptr<std::atomic<int64_t>> clamped;  // counted by the first linear of a site only (q of q, k, v)

  void forward(float* y, const float* x, int N) const override {
    const int64_t C = w.C, n = (int64_t)N * C;
    static thread_local avector<uint8_t> codes;  // reused: a fresh buffer per call costs page faults
    static thread_local std::vector<float> steps;
    if ((int64_t)codes.size() < n) codes.resize(n);
    int8_t* qs = (int8_t*)codes.data();
    uint8_t* qu = codes.data();
    const int bits = act.bits;
    const bool sym = act.scheme == Scheme::sym;
    int64_t sat = 0;
    Int8Acts a;
    if (act.dynamic && act.gran == Gran::row) {  // K3: per-token steps
      steps.resize(N);
      if (bits == 8) {
        quantize_per_token(x, N, C, C, qs, C, steps.data(), isa);
      } else {
#pragma omp parallel for reduction(+ : sat) schedule(static) if (n > (1 << 16))
        for (int t = 0; t < N; t++) {
          float zero;
          dynamic_params(x + t * C, C, act, steps[t], zero);
          for (int64_t c = 0; c < C; c++) qs[t * C + c] = code_sym(x[t * C + c], steps[t], bits, sat);
        }
      }
      a = acts_s8_per_token(qs, steps.data(), N, C);
    } else {  // K1 (u8, zero point) or s8 with one step (K2 when the step is folded: 1)
      float step = act.dynamic ? 0.0f : act.scale[0], zero = sym || act.dynamic ? 0.0f : act.zero[0];
      if (act.dynamic) dynamic_params(x, n, act, step, zero);
#pragma omp parallel for reduction(+ : sat) schedule(static) if (n > (1 << 16))
      for (int t = 0; t < N; t++)
        for (int64_t c = t * C; c < (t + 1) * C; c++) {
          if (sym) {
            qs[c] = code_sym(x[c], step, bits, sat);
          } else {
            qu[c] = code_asym(x[c], step, zero, bits, sat);
          }
        }
      a = sym ? Int8Acts{qs, N, C, true, 0, step, nullptr} : acts_u8(qu, N, C, step, (int32_t)zero);
    }
    if (sat && clamped) clamped->fetch_add(sat, std::memory_order_relaxed);
    gemm_int8(a, w, y, w.O, isa);
  }
  int64_t bytes() const override {
    return (int64_t)w.data.size() + 4 * (int64_t)(w.row_sum.size() + w.scale.size() + w.bias.size() + w.zero.size());
  }
};

// K4: weight-only, the activation as it arrives.
struct LowbitExec final : LinearExec {
  LowbitPacked w;
  Isa isa = Isa::automatic;
  void forward(float* y, const float* x, int N) const override { gemm_lowbit(x, N, w.C, w, y, w.O, isa); }
  int64_t bytes() const override { return (int64_t)w.bytes(); }
};

std::vector<int32_t> weight_codes(const Linear& l, const QuantSpec& s) {
  std::vector<int32_t> codes(l.w.numel());
  quantize_codes(l.w.ptr(), l.out(), l.in(), s, codes.data());
  return codes;
}

std::shared_ptr<Int8Exec> make_int8(const Linear& l, const QuantSpec& ws, const QuantSpec& site, const Runtime& rt,
                                    bool counts, Isa isa) {
  const int O = l.out(), C = l.in();
  std::vector<int32_t> codes = weight_codes(l, ws);
  // 8-bit asymmetric codes [0, 255] move to s8 with their zero point: (q − zw) is unchanged.
  const int shift = ws.scheme == Scheme::asym && ws.bits == 8 ? 128 : 0;
  std::vector<int8_t> q(codes.size());
  for (size_t i = 0; i < codes.size(); i++) q[i] = (int8_t)(codes[i] - shift);
  std::vector<float> scale(O);
  std::vector<int32_t> zero(ws.scheme == Scheme::asym ? O : 0);
  for (int o = 0; o < O; o++) {
    int64_t p = ws.param_index(o, 0, C);
    scale[o] = ws.scale[p];
    if (!zero.empty()) zero[o] = (int32_t)ws.zero[p] - shift;
  }
  auto e = std::make_shared<Int8Exec>();
  e->w = pack_int8({q.data(), O, C, scale.data(), l.b.empty() ? nullptr : l.b.ptr(), zero.empty() ? nullptr : zero.data()});
  e->act = site;
  e->act.pre_inv.clear();
  e->act.pre_shift.clear();
  e->isa = isa;
  if (counts) e->clamped = rt.clamped;
  return e;
}

std::shared_ptr<LowbitExec> make_lowbit(const Linear& l, const QuantSpec& ws, Isa isa) {
  const int O = l.out(), C = l.in();
  std::vector<int32_t> codes = weight_codes(l, ws);
  const int container = ws.bits <= 2 ? 2 : ws.bits <= 4 ? std::max(ws.bits, 3) : 8;
  // Symmetric codes [−2^(b−1), 2^(b−1)) become unsigned with the zero point 2^(b−1).
  const int off = ws.scheme == Scheme::sym ? 1 << (ws.bits - 1) : 0;
  const int group = ws.gran == Gran::group ? ws.group : (C + 31) / 32 * 32;
  const int64_t groups = (C + group - 1) / group;
  std::vector<uint8_t> q(codes.size());
  for (size_t i = 0; i < codes.size(); i++) q[i] = (uint8_t)(codes[i] + off);
  std::vector<uint16_t> scale(O * groups), zero(O * groups);
  for (int o = 0; o < O; o++)
    for (int64_t g = 0; g < groups; g++) {
      int64_t p = ws.param_index(o, (int)(g * group), C);
      scale[o * groups + g] = f32_to_f16(ws.scale[p]);
      zero[o * groups + g] = f32_to_f16(ws.scheme == Scheme::asym ? ws.zero[p] : (float)off);
    }
  auto e = std::make_shared<LowbitExec>();
  e->w = pack_lowbit({q.data(), O, C, container, group, scale.data(), zero.data(), l.b.empty() ? nullptr : l.b.ptr()});
  e->isa = isa;
  return e;
}

// The linears a site feeds, with their weight names.
struct SiteLinears {
  Site site;
  int layer;
  std::vector<std::pair<std::string, Linear*>> lins;
};

std::vector<SiteLinears> site_linears(Model& m) {
  std::vector<SiteLinears> out;
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (Site site : linear_input_sites()) {
      SiteLinears sl{site, l, {}};
      for (auto& nl : site_consumers(m.blocks[l], site)) sl.lins.push_back({weight_name(l, nl.slot), nl.lin});
      out.push_back(std::move(sl));
    }
  if (!m.cfg.tied_head && !m.head.w.empty()) out.push_back({Site::head_in, -1, {{"output.weight", &m.head}}});
  return out;
}

}  // namespace

std::string Runtime::summary() const {
  return fmt::format("int8 {}, lowbit {}, float {} linears", n_int8, n_lowbit, n_float);
}

Runtime attach_runtime(Model& m, const QuantPlan& plan, const RuntimeOptions& opt) {
  Runtime rt;
  rt.sim_plan = plan;
  const Isa isa = resolve_isa(opt.isa);
  auto planned = [&](const std::string& name) -> const QuantSpec* {
    auto it = plan.weights.find(name);
    return it != plan.weights.end() && it->second.enabled() ? &it->second : nullptr;
  };
  std::vector<std::string> handled;
  std::vector<Linear*> packed;
  for (SiteLinears& sl : site_linears(m)) {
    const std::string key = site_key(sl.site, sl.layer);
    auto sit = plan.sites.find(key);
    const QuantSpec* site = sit != plan.sites.end() && sit->second.enabled() ? &sit->second : nullptr;
    for (auto& [name, lin] : sl.lins) TQ_ASSERT(!lin->exec, "the integer runtime is already attached");
    bool all_int8 = site && int8_site(*site);
    for (auto& [name, lin] : sl.lins) all_int8 = all_int8 && planned(name) && int8_weight(*planned(name));
    if (all_int8) {
      for (auto& [name, lin] : sl.lins) {
        lin->exec = make_int8(*lin, *planned(name), *site, rt, lin == sl.lins[0].second, isa);
        packed.push_back(lin);
        handled.push_back(name);
        rt.n_int8++;
      }
      QuantSpec& s = rt.sim_plan.sites.at(key);
      if (s.pre_inv.empty()) {
        rt.sim_plan.sites.erase(key);
      } else {
        s.bits = 0;  // the transform only: the executors quantize
      }
      continue;
    }
    bool quantized_consumer = false;
    for (auto& [name, lin] : sl.lins) {
      const QuantSpec* ws = planned(name);
      if (!ws) continue;
      quantized_consumer = true;
      handled.push_back(name);
      std::string why = lowbit_problem(*ws);
      if (why.empty()) {
        lin->exec = make_lowbit(*lin, *ws, isa);
        packed.push_back(lin);
        rt.n_lowbit++;
      } else {
        fake_quant(lin->w.ptr(), lin->out(), lin->in(), *ws);
        rt.n_float++;
        rt.notices.push_back(fmt::format("{}: {}: simulated (fp32 GEMM on the dequantized weight)", name, why));
      }
    }
    if (site && quantized_consumer)
      rt.notices.push_back(fmt::format("{}: {} {}{} activations fake-quantized ({})", key, to_string(site->gran),
                                       site->dynamic ? "dynamic " : "", to_string(site->scheme),
                                       int8_site(*site) ? "a linear it feeds has no int8 weight"
                                                        : "no int8 kernel form"));
  }
  // Other planned tensors (a tied head's embedding, ...): their quantize-dequantize values, as in simulation.
  for (auto& [name, spec] : plan.weights) {
    if (!spec.enabled() || std::find(handled.begin(), handled.end(), name) != handled.end()) continue;
    bool found = false;
    for (auto& nt : named_tensors(m))
      if (nt.name == name) {
        fake_quant(nt.t->ptr(), (int)nt.t->rows(), (int)nt.t->cols(), spec);
        found = true;
      }
    if (!found) bad_input("plan quantizes '{}', which the model does not have", name);
  }
  if (opt.drop_float)
    for (Linear* l : packed) {  // the executor holds weight and bias; the shape stays for in() and out()
      l->w.data = std::vector<float>();
      l->b = Tensor();
    }
  rt.sim = std::make_unique<SimHook>(rt.sim_plan, m.cfg.n_layers);
  return rt;
}

int64_t runtime_bytes(const Model& m) {
  int64_t n = 0;
  for (auto& nt : named_tensors(const_cast<Model&>(m))) n += nt.t->resident_bytes();
  auto add = [&](const Linear& l) { n += l.exec ? l.exec->bytes() : 0; };
  for (auto& b : m.blocks)
    for (auto& d : linear_table()) add(b.*d.member);
  add(m.head);
  return n;
}

}  // namespace tq
