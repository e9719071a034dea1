#include "runtime/runtime.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"
#include "kernels/attn_scores.h"
#include "kernels/gemm_int8.h"
#include "kernels/gemm_lowbit.h"
#include "kernels/pv_log.h"
#include "nn/ops.h"
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

// The site quantizers whose codes K4-a8 takes: the symmetric int8 forms (s8 codes, a step per row).
bool a8_site(const QuantSpec& s) { return int8_site(s) && s.scheme == Scheme::sym; }

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

std::string weight_form(const QuantSpec& w) {
  return fmt::format("{}-bit {}", w.bits, w.gran == Gran::group ? fmt::format("g{}", w.group) : to_string(w.gran));
}
std::string site_form(const QuantSpec& s) {
  const char* codes = s.scheme == Scheme::sym ? "s8" : "u8";
  if (s.dynamic && s.gran == Gran::row) return fmt::format("{} per token", codes);
  if (s.dynamic && s.gran == Gran::group) return fmt::format("{} per token and head", codes);
  return fmt::format("{} per tensor{}", codes, s.dynamic ? " (dynamic)" : "");
}
// K1–K3 by the site's form (docs/methods.md §0.4).
const char* int8_kernel(const QuantSpec& s) {
  if (s.dynamic && s.gran == Gran::row) return "K3";
  return s.scheme == Scheme::asym ? "K1" : "K2";
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

// The codes of x (N × C) by a site's int8 quantizer (int8_site), as the simulation
// computes them: s8 (sym) or u8 (asym, with its zero point), one step or one per
// row (per token). Clamps by static ranges are added to sat. The codes live in a
// buffer of the calling thread, valid until its next call.
Int8Acts site_codes(const QuantSpec& act, const float* x, int N, int64_t C, Isa isa, int64_t& sat) {
  const int64_t n = (int64_t)N * C;
  static thread_local avector<uint8_t> codes;  // reused: a fresh buffer per call costs page faults
  static thread_local std::vector<float> steps;
  if ((int64_t)codes.size() < n) codes.resize(n);
  int8_t* qs = (int8_t*)codes.data();
  uint8_t* qu = codes.data();
  const int bits = act.bits;
  const bool sym = act.scheme == Scheme::sym;
  if (act.dynamic && act.gran == Gran::row) {  // K3: per-token steps
    steps.resize(N);
    float* st = steps.data();  // the calling thread's buffer: OpenMP workers have their own thread_locals
    if (bits == 8) {
      quantize_per_token(x, N, C, C, qs, C, st, isa);
    } else {
#pragma omp parallel for reduction(+ : sat) schedule(static) if (n > (1 << 16))
      for (int t = 0; t < N; t++) {
        float zero;
        dynamic_params(x + t * C, C, act, st[t], zero);
        for (int64_t c = 0; c < C; c++) qs[t * C + c] = code_sym(x[t * C + c], st[t], bits, sat);
      }
    }
    return acts_s8_per_token(qs, st, N, C);
  }
  // K1 (u8, zero point) or s8 with one step (K2 when the step is folded: 1)
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
  return sym ? Int8Acts{qs, N, C, true, 0, step, nullptr} : acts_u8(qu, N, C, step, (int32_t)zero);
}

// K1–K3: codes of the activation by the site's quantizer, then the int8 GEMM.
struct Int8Exec final : LinearExec {
  Int8Packed w;
  QuantSpec act;  // the site's quantizer; its pre-transform stays in the hook
  Isa isa = Isa::automatic;
  std::shared_ptr<std::atomic<int64_t>> clamped;  // counted by the first linear of a site only (q of q, k, v)

  void forward(float* y, const float* x, int N) const override {
    int64_t sat = 0;
    const Int8Acts a = site_codes(act, x, N, w.C, isa, sat);
    if (sat && clamped) clamped->fetch_add(sat, std::memory_order_relaxed);
    gemm_int8(a, w, y, w.O, isa);
  }
  int64_t bytes() const override {
    return (int64_t)w.data.size() + 4 * (int64_t)(w.row_sum.size() + w.scale.size() + w.bias.size() + w.zero.size());
  }
};

// K4-a8: low-bit weights on the site's symmetric int8 codes (a8_site).
struct LowbitA8Exec final : LinearExec {
  LowbitPacked w;
  QuantSpec act;
  Isa isa = Isa::automatic;
  std::shared_ptr<std::atomic<int64_t>> clamped;

  void forward(float* y, const float* x, int N) const override {
    int64_t sat = 0;
    const Int8Acts a = site_codes(act, x, N, w.C, isa, sat);
    if (sat && clamped) clamped->fetch_add(sat, std::memory_order_relaxed);
    static thread_local std::vector<float> steps;
    if (!a.row_step) steps.assign(N, a.step);
    gemm_lowbit_a8((const int8_t*)a.q, a.row_step ? a.row_step : steps.data(), N, w.C, w, y, w.O, isa);
  }
  int64_t bytes() const override { return (int64_t)w.bytes(); }
};

// K4: weight-only, the activation as it arrives.
struct LowbitExec final : LinearExec {
  LowbitPacked w;
  Isa isa = Isa::automatic;
  void forward(float* y, const float* x, int N) const override { gemm_lowbit(x, N, w.C, w, y, w.O, isa); }
  int64_t bytes() const override { return (int64_t)w.bytes(); }
};

// The plan's codes of a weight, each plus `add`, as bytes. A weight left in its file
// (lazy loading) is read a few rows at a time, so neither its f32 values nor its
// codes as int32 are ever held whole (a 32000 × 4096 head would need 1 GB for them).
std::vector<uint8_t> weight_code_bytes(const Linear& l, const QuantSpec& s, int add) {
  const int64_t O = l.out(), C = l.in();
  constexpr int64_t kRows = 64;
  std::vector<uint8_t> bytes((size_t)(O * C));
  parallel_for_with((O + kRows - 1) / kRows, [&] { return std::pair<std::vector<float>, std::vector<int32_t>>(); },
                    [&](auto& buf, int64_t b) {
                      const int64_t r0 = b * kRows, n = std::min(kRows, O - r0);
                      auto& [x, codes] = buf;
                      const float* rows = l.w.has_values() ? l.w.ptr() + r0 * C : nullptr;
                      if (!rows) {
                        x.resize((size_t)(n * C));
                        l.w.stored->rows_to_f32(r0, n, x.data());
                        rows = x.data();
                      }
                      codes.resize((size_t)(n * C));
                      quantize_codes(rows, (int)n, (int)C, s.rows(r0, n, C), codes.data());
                      for (int64_t i = 0; i < n * C; i++) bytes[r0 * C + i] = (uint8_t)(codes[i] + add);
                    });
  if (!l.w.has_values() && l.w.stored) l.w.stored->evict();
  return bytes;
}

std::shared_ptr<Int8Exec> make_int8(const Linear& l, const QuantSpec& ws, const QuantSpec& site, const Runtime& rt,
                                    bool counts, Isa isa) {
  const int O = l.out(), C = l.in();
  // 8-bit asymmetric codes [0, 255] move to s8 with their zero point: (q − zw) is unchanged.
  const int shift = ws.scheme == Scheme::asym && ws.bits == 8 ? 128 : 0;
  std::vector<uint8_t> q = weight_code_bytes(l, ws, -shift);  // two's complement: the s8 codes' bits
  std::vector<float> scale(O);
  std::vector<int32_t> zero(ws.scheme == Scheme::asym ? O : 0);
  for (int o = 0; o < O; o++) {
    int64_t p = ws.param_index(o, 0, C);
    scale[o] = ws.scale[p];
    if (!zero.empty()) zero[o] = (int32_t)ws.zero[p] - shift;
  }
  auto e = std::make_shared<Int8Exec>();
  e->w = pack_int8({reinterpret_cast<const int8_t*>(q.data()), O, C, scale.data(), l.b.empty() ? nullptr : l.b.ptr(), zero.empty() ? nullptr : zero.data()});
  e->act = site;
  e->act.pre_inv.clear();
  e->act.pre_shift.clear();
  e->isa = isa;
  if (counts) e->clamped = rt.clamped;
  return e;
}

// The plan's codes of a weight in K4's layout (lowbit_problem(ws) is empty).
LowbitPacked pack_plan_lowbit(const Linear& l, const QuantSpec& ws) {
  const int O = l.out(), C = l.in();
  const int bits = std::max(ws.bits, 2);  // 1-bit codes ride in the 2-bit layout
  // Symmetric codes [−2^(b−1), 2^(b−1)) become unsigned with the zero point 2^(b−1).
  const int off = ws.scheme == Scheme::sym ? 1 << (ws.bits - 1) : 0;
  const int group = ws.gran == Gran::group ? ws.group : (C + 31) / 32 * 32;
  const int64_t groups = (C + group - 1) / group;
  std::vector<uint8_t> q = weight_code_bytes(l, ws, off);
  std::vector<uint16_t> scale(O * groups), zero(O * groups);
  for (int o = 0; o < O; o++)
    for (int64_t g = 0; g < groups; g++) {
      int64_t p = ws.param_index(o, (int)(g * group), C);
      scale[o * groups + g] = f32_to_f16(ws.scale[p]);
      zero[o * groups + g] = f32_to_f16(ws.scheme == Scheme::asym ? ws.zero[p] : (float)off);
    }
  return pack_lowbit({q.data(), O, C, bits, group, scale.data(), zero.data(), l.b.empty() ? nullptr : l.b.ptr()});
}

std::shared_ptr<LowbitExec> make_lowbit(const Linear& l, const QuantSpec& ws, Isa isa) {
  auto e = std::make_shared<LowbitExec>();
  e->w = pack_plan_lowbit(l, ws);
  e->isa = isa;
  return e;
}

std::shared_ptr<LowbitA8Exec> make_lowbit_a8(const Linear& l, const QuantSpec& ws, const QuantSpec& site,
                                             const Runtime& rt, bool counts, Isa isa) {
  auto e = std::make_shared<LowbitA8Exec>();
  e->w = pack_plan_lowbit(l, ws);
  e->act = site;
  e->act.pre_inv.clear();
  e->act.pre_shift.clear();
  e->isa = isa;
  if (counts) e->clamped = rt.clamped;
  return e;
}

// ---- attention ----

// The attention operand quantizers the integer attention takes (q, k; v too for K5):
// uniform of ≤ 8 bits without a pre-transform, static per tensor with an integer zero
// point, or dynamic per token. Dynamic per-tensor ones take their parameters from the
// call's tokens, which the executor (reading the whole cache) does not see apart.
bool attn_operand(const QuantSpec& s, int head_dim) {
  if (!s.enabled() || !uniform(s) || s.bits > 8 || !s.pre_inv.empty()) return false;
  if (s.dynamic) return s.gran == Gran::row || (s.gran == Gran::group && s.group == head_dim);
  return s.gran == Gran::tensor && s.scale.size() == 1 && integer_zeros(s);
}
// A site the executor can fake-quantize itself (v beside K5, probs): any but dynamic per tensor.
bool attn_fake_quantizable(const QuantSpec& s) {
  return s.pre_inv.empty() && (!s.dynamic || s.gran != Gran::tensor);
}

// The codes of rows × cols values (row stride ld) by an attn_operand quantizer, minus the
// zero point, with a step per row, or per row and head (dynamic per head: step[r·heads + h]):
// the codes fake_quant takes. Clamps of rows ≥ count_from (this call's tokens; earlier ones
// were counted when they came) are added to sat.
void centered_codes(const QuantSpec& s, const float* x, int64_t rows, int64_t cols, int64_t ld, int16_t* c,
                    float* step, int64_t count_from, int64_t& sat) {
  const bool sym = s.scheme == Scheme::sym;
  const int64_t width = s.dynamic && s.gran == Gran::group ? s.group : cols, parts = cols / width;
  for (int64_t r = 0; r < rows; r++) {
    int64_t clamps = 0;
    for (int64_t p = 0; p < parts; p++) {
      const float* xp = x + r * ld + p * width;
      float st = s.dynamic ? 0.0f : s.scale[0], zero = sym || s.dynamic ? 0.0f : s.zero[0];
      if (s.dynamic) dynamic_params(xp, width, s, st, zero);
      int16_t* cp = c + r * cols + p * width;
      for (int64_t j = 0; j < width; j++)
        cp[j] = sym ? code_sym(xp[j], st, s.bits, clamps) : (int16_t)(code_asym(xp[j], st, zero, s.bits, clamps) - (int)zero);
      step[r * parts + p] = st;
    }
    if (r >= count_from) sat += clamps;
  }
}

// q·kᵀ on the integer codes of q and k (attn_scores), the forward's softmax, then P·V:
// on K5 (pv_log) when probs is log√2 per tensor and v a static per-tensor quantizer,
// else in f32 on the fake-quantized P and V (as the simulation computes it).
struct AttnExec final : AttentionExec {
  QuantSpec q, k, v, probs;  // v, probs: bits 0 when float
  bool log_pv = false;
  Isa isa = Isa::automatic;
  std::shared_ptr<std::atomic<int64_t>> clamped;

  void forward(float* att, const float* qx, const float* kx, const float* vx, const AttnShape& s, int q_stride,
               int kv_stride) const override {
    const int qd = s.H * s.hd, kvd = s.KV * s.hd;
    static thread_local std::vector<int16_t> qc, kc;
    static thread_local std::vector<float> qstep, kstep, P, vhat;
    qc.resize((size_t)s.Sq * qd);
    kc.resize((size_t)s.Sk * kvd);
    const bool q_heads = q.gran == Gran::group, k_heads = k.gran == Gran::group;  // per-head steps
    qstep.resize((size_t)s.Sq * (q_heads ? s.H : 1));
    kstep.resize((size_t)s.Sk * (k_heads ? s.KV : 1));
    P.resize((size_t)s.H * s.Sq * s.Sk);
    int64_t sat = 0;
    centered_codes(q, qx, s.Sq, qd, q_stride, qc.data(), qstep.data(), 0, sat);
    centered_codes(k, kx, s.Sk, kvd, kv_stride, kc.data(), kstep.data(), s.past, sat);
    attn_scores({qc.data(), qstep.data(), s.Sq, qd, q_heads}, {kc.data(), kstep.data(), s.Sk, kvd, k_heads}, s.H, s.KV, s.hd,
                1.0f / std::sqrt((float)s.hd), P.data(), isa);
    attention_softmax(P.data(), s);
    if (log_pv) {
      // P as log√2 codes (0xFF: zero), V as s8 codes with the zero point (u8 codes move by −128).
      static thread_local std::vector<uint8_t> pc;
      static thread_local std::vector<int8_t> vc;
      pc.resize(P.size());
      vc.resize((size_t)s.Sk * kvd);
      for (size_t i = 0; i < P.size(); i++) {
        const int code = q_logsqrt2(P[i], probs.scale[0], probs.bits);
        pc[i] = code < 0 ? 0xFF : (uint8_t)code;
      }
      const bool sym = v.scheme == Scheme::sym;
      const int shift = sym ? 0 : 128;
      for (int j = 0; j < s.Sk; j++) {
        int64_t clamps = 0;
        for (int d = 0; d < kvd; d++) {
          const float x = vx[(int64_t)j * kv_stride + d];
          vc[(size_t)j * kvd + d] = (int8_t)((sym ? code_sym(x, v.scale[0], v.bits, clamps)
                                                  : code_asym(x, v.scale[0], v.zero[0], v.bits, clamps)) - shift);
        }
        if (j >= s.past) sat += clamps;
      }
      const int32_t zero = sym ? 0 : (int32_t)v.zero[0] - shift;
      for (int h = 0; h < s.H; h++)
        pv_log({pc.data() + (int64_t)h * s.Sq * s.Sk, s.Sq, s.Sk, s.Sk, probs.bits, probs.scale[0]},
               {vc.data() + (h / (s.H / s.KV)) * s.hd, s.Sk, s.hd, kvd, v.scale[0], zero}, att + h * s.hd, q_stride,
               isa);
    } else {
      if (probs.enabled()) fake_quant(P.data(), s.H * s.Sq, s.Sk, probs);
      const float* V = vx;
      int ldv = kv_stride;
      if (v.enabled()) {
        vhat.resize((size_t)s.Sk * kvd);
        for (int j = 0; j < s.Sk; j++)
          std::copy(vx + (int64_t)j * kv_stride, vx + (int64_t)j * kv_stride + kvd, vhat.begin() + (size_t)j * kvd);
        // Clamps of this call's rows only (the earlier ones were counted when they came).
        const int64_t now = fake_quant(vhat.data() + (size_t)s.past * kvd, s.Sk - s.past, kvd, v);
        if (s.past > 0) fake_quant(vhat.data(), s.past, kvd, v);
        sat += now;
        V = vhat.data();
        ldv = kvd;
      }
      attention_apply_forward(att, P.data(), V, s, q_stride, ldv);
    }
    if (sat && clamped) clamped->fetch_add(sat, std::memory_order_relaxed);
  }
};

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

// Gives block l an integer attention when its q and k sites are attn_operand quantizers
// and its v and probs sites are float or fake-quantizable; the executor then owns the four
// sites (they leave the hook's plan). Returns whether it did, after recording the kernel.
bool attach_attention(Block& b, int l, int head_dim, Runtime& rt, Isa isa) {
  auto spec = [&](Site s) -> const QuantSpec* {
    auto it = rt.sim_plan.sites.find(site_key(s, l));
    return it != rt.sim_plan.sites.end() && it->second.enabled() ? &it->second : nullptr;
  };
  const QuantSpec *q = spec(Site::q), *k = spec(Site::k), *v = spec(Site::v), *probs = spec(Site::probs);
  const int hd = head_dim;
  if (!q || !k || !attn_operand(*q, hd) || !attn_operand(*k, hd)) return false;
  if ((v && !attn_fake_quantizable(*v)) || (probs && !attn_fake_quantizable(*probs))) return false;
  auto e = std::make_shared<AttnExec>();
  e->q = *q;
  e->k = *k;
  e->v.bits = e->probs.bits = 0;
  if (v) e->v = *v;
  if (probs) e->probs = *probs;
  e->log_pv = probs && probs->scheme == Scheme::logsqrt2 && !probs->dynamic && probs->gran == Gran::tensor &&
              probs->bits <= 8 && v && attn_operand(*v, hd) && !v->dynamic;
  e->isa = isa;
  e->clamped = rt.clamped;
  std::string pv = e->log_pv ? fmt::format("K5 pv_log, {}-bit log√2 probs × {} v", probs->bits, site_form(*v))
                             : fmt::format("fp32 p·v on {} probs × {} v", probs ? "fake-quantized" : "f32",
                                           v ? "fake-quantized" : "f32");
  rt.kernels.push_back({block_key(l, "attention"),
                        fmt::format("int8 q·kᵀ ({} q × {} k, {}), fp32 softmax, {}", site_form(*q), site_form(*k),
                                    attn_scores_path(isa), pv)});
  for (Site s : {Site::q, Site::k, Site::v, Site::probs}) rt.sim_plan.sites.erase(site_key(s, l));
  b.attn_exec = e;
  rt.n_attention++;
  return true;
}

}  // namespace

std::vector<std::string> Runtime::kernel_lines() const {
  // Tensors by kernel, in first-seen order; "blk.N." folded when every layer agrees.
  std::vector<std::pair<std::string, std::vector<std::string>>> by_kernel;
  for (auto& entry : kernels) {  // (not a structured binding: clang 14 refuses capturing one)
    const std::string& kernel = entry.second;
    auto it = std::find_if(by_kernel.begin(), by_kernel.end(), [&](auto& e) { return e.first == kernel; });
    if (it == by_kernel.end()) it = by_kernel.insert(by_kernel.end(), {kernel, {}});
    it->second.push_back(entry.first);
  }
  std::vector<std::string> out;
  for (auto& [kernel, names] : by_kernel) {
    std::vector<std::string> parts;  // a short name ("attn_q") and the layers it came from
    std::vector<std::vector<int>> layers;
    for (const std::string& n : names) {
      int layer = -1;
      std::string part = n;
      if (n.rfind("blk.", 0) == 0) {
        layer = std::stoi(n.substr(4));
        part = n.substr(n.find('.', 4) + 1);
      }
      if (part.size() > 7 && part.compare(part.size() - 7, 7, ".weight") == 0) part.resize(part.size() - 7);
      auto pit = std::find(parts.begin(), parts.end(), part);
      if (pit == parts.end()) {
        parts.push_back(part);
        layers.push_back({});
        pit = parts.end() - 1;
      }
      layers[pit - parts.begin()].push_back(layer);
    }
    // Consecutive parts from the same layers share one "(every layer)".
    std::string what;
    for (size_t i = 0; i < parts.size(); i++) {
      std::string where;
      if (layers[i][0] >= 0)
        where = (int)layers[i].size() == n_layers ? " (every layer)" : fmt::format(" (layers {})", fmt::join(layers[i], ","));
      const bool same_next = i + 1 < parts.size() && layers[i + 1] == layers[i];
      what += parts[i] + (same_next ? ", " : where + (i + 1 < parts.size() ? "; " : ""));
    }
    out.push_back(fmt::format("{}: {}", what, kernel));
  }
  return out;
}

std::string Runtime::summary() const {
  return fmt::format("int8 {}, lowbit-a8 {}, lowbit {}, float {} linears", n_int8, n_lowbit_a8, n_lowbit, n_float);
}

// A weight whose values the runtime changes (fake-quantized in place) no longer reads from its file.
static void own_values(Tensor& w) {
  w.load_values();
  w.stored.reset();
}

Runtime attach_runtime(Model& m, const QuantPlan& plan, const RuntimeOptions& opt) {
  Runtime rt;
  rt.sim_plan.sites = plan.sites;  // the sites only: the hook does not read weights, and their scales are large
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
    // The site's codes go straight to integer kernels when every linear it feeds takes them:
    // int8 weights (K1–K3), or low-bit groups on symmetric codes (K4-a8).
    auto integer = [&](const QuantSpec* ws) {
      return ws && (int8_weight(*ws) || (a8_site(*site) && lowbit_problem(*ws).empty()));
    };
    bool all_integer = site && int8_site(*site);
    for (auto& [name, lin] : sl.lins) all_integer = all_integer && integer(planned(name));
    if (all_integer) {
      for (auto& [name, lin] : sl.lins) {
        const QuantSpec& ws = *planned(name);
        const bool counts = lin == sl.lins[0].second;
        if (int8_weight(ws)) {
          lin->exec = make_int8(*lin, ws, *site, rt, counts, isa);
          rt.n_int8++;
          rt.kernels.push_back({name, fmt::format("{} int8, {} × {} ({})", int8_kernel(*site), weight_form(ws),
                                                  site_form(*site), gemm_int8_path(isa))});
        } else {
          lin->exec = make_lowbit_a8(*lin, ws, *site, rt, counts, isa);
          rt.n_lowbit_a8++;
          rt.kernels.push_back({name, fmt::format("K4-a8, {} × {} ({})", weight_form(ws), site_form(*site),
                                                  gemm_lowbit_path(static_cast<const LowbitA8Exec&>(*lin->exec).w, isa, true))});
        }
        packed.push_back(lin);
        handled.push_back(name);
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
      const char* acts = site ? "fake-quantized f32" : "f32";
      if (why.empty()) {
        lin->exec = make_lowbit(*lin, *ws, isa);
        packed.push_back(lin);
        rt.n_lowbit++;
        rt.kernels.push_back({name, fmt::format("K4, {} × {} ({})", weight_form(*ws), acts,
                                                gemm_lowbit_path(static_cast<const LowbitExec&>(*lin->exec).w, isa, false))});
      } else {
        own_values(lin->w);
        fake_quant(lin->w.ptr(), lin->out(), lin->in(), *ws);
        rt.n_float++;
        rt.notices.push_back(fmt::format("{}: {}: simulated (fp32 GEMM on the dequantized weight)", name, why));
        rt.kernels.push_back({name, fmt::format("fp32 BLAS on the dequantized weight × {}", acts)});
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
        own_values(*nt.t);
        fake_quant(nt.t->ptr(), (int)nt.t->rows(), (int)nt.t->cols(), spec);
        found = true;
      }
    if (!found) bad_input("plan quantizes '{}', which the model does not have", name);
  }
  if (opt.drop_float)
    for (Linear* l : packed) {  // the executor holds weight and bias; the shape stays for in() and out()
      l->w.data = std::vector<float>();
      l->w.stored.reset();  // a stored weight's decoder holds a copy of its scales
      l->b = Tensor();
    }
  rt.n_layers = m.cfg.n_layers;
  for (int l = 0; l < m.cfg.n_layers; l++) {
    if (attach_attention(m.blocks[l], l, m.cfg.head_dim, rt, isa)) continue;
    std::vector<std::string> sim;
    for (Site s : {Site::q, Site::k, Site::v, Site::probs}) {
      auto it = rt.sim_plan.sites.find(site_key(s, l));
      if (it != rt.sim_plan.sites.end() && it->second.enabled()) sim.push_back(site_name(s));
    }
    rt.kernels.push_back({block_key(l, "attention"),
                          sim.empty() ? "fp32 (q·kᵀ, softmax, p·v)"
                                      : fmt::format("fp32 on fake-quantized {}", fmt::join(sim, ", "))});
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
