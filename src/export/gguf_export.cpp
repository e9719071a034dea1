#include "export/gguf_export.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "export/gguf_writer.h"
#include "io/ggml_quants.h"
#include "io/ggml_types.h"
#include "nn/block.h"

namespace tq {

namespace {

// Which ggml type a quantized weight goes to: the first rule of the policy that
// matches its scheme and bits (kquant rules only where rows are whole 256-blocks;
// a policy without a match uses the exact rules).
struct TypeRule {
  const char* policy;
  int scheme;  // a Scheme, or −1 for both sym and asym
  int lo, hi;  // bit widths
  uint32_t type;
  bool codes;  // packs the plan's own codes; else re-quantizes the simulated values
};
constexpr int kSym = (int)Scheme::sym, kAsym = (int)Scheme::asym;
const TypeRule kRules[] = {
    {"kquant", -1, 2, 2, ggml_q2_k, false},  {"kquant", -1, 3, 3, ggml_q3_k, false},
    {"kquant", -1, 4, 4, ggml_q4_k, false},  {"kquant", -1, 5, 5, ggml_q5_k, false},
    {"kquant", -1, 6, 6, ggml_q6_k, false},  {"exact", kAsym, 1, 4, ggml_q4_1, true},
    {"exact", kAsym, 5, 5, ggml_q5_1, true}, {"exact", kAsym, 6, 8, ggml_q8_0, false},
    {"exact", kSym, 1, 4, ggml_q4_0, true},  {"exact", kSym, 5, 5, ggml_q5_0, true},
    {"exact", kSym, 6, 8, ggml_q8_0, true},
};

const TypeRule* find_rule(const std::string& policy, const QuantSpec& s, int64_t cols) {
  for (const std::string& p : {policy, std::string("exact")}) {
    if (p == "kquant" && cols % 256) continue;
    for (const TypeRule& r : kRules)
      if (p == r.policy && (r.scheme < 0 || r.scheme == (int)s.scheme) && s.bits >= r.lo && s.bits <= r.hi) return &r;
  }
  return nullptr;
}

uint32_t float_type(const std::string& name) { return name == "f16" ? ggml_f16 : ggml_f32; }

std::vector<uint8_t> encode(uint32_t type, const Tensor& t) {
  const GgmlTypeInfo* ti = ggml_type_info(type);
  std::vector<uint8_t> out(t.numel() / ti->block * ti->bytes);
  ti->from_f32(t.ptr(), out.data(), t.numel());
  return out;
}

// The plan's codes in 32-blocks of a legacy type, or empty when some block straddles two
// parameter groups (then the type cannot hold the plan's quantizer).
std::vector<uint8_t> pack_codes(uint32_t type, const Tensor& w, const QuantSpec& s) {
  const int rows = (int)w.dim(0), cols = (int)w.dim(1);
  std::vector<int32_t> codes(w.numel());
  quantize_codes(w.ptr(), rows, cols, s, codes.data());
  Tensor back(w.shape);
  dequantize_codes(codes.data(), rows, cols, s, back.ptr());
  if (back.data != w.data) run_failed("GGUF export: the weights are not the plan's simulation");
  const int bytes = ggml_type_info(type)->bytes;
  std::vector<uint8_t> out((size_t)rows * (cols / 32) * bytes);
  GgmlBlock blk;
  for (int r = 0; r < rows; r++)
    for (int c0 = 0; c0 < cols; c0 += 32) {
      int64_t p = s.param_index(r, c0, cols);
      if (p != s.param_index(r, c0 + 31, cols)) return {};
      for (int i = 0; i < 32; i++) blk.q[i] = codes[(int64_t)r * cols + c0 + i];  // the plan's codes are ggml's value codes
      blk.d = s.scale[p];
      blk.m = s.scheme == Scheme::asym ? -s.zero[p] * blk.d : 0.0f;
      pack_block(type, blk, out.data() + ((int64_t)r * (cols / 32) + c0 / 32) * bytes);
    }
  return out;
}

// The metadata every export carries: llama's, and the quantization version when some tensor is
// in a block type (llama.cpp reads the two layouts versions by it).
void add_metadata(GgufWriter& w, const Model& m, bool quantized) {
  add_llama_metadata(w, m);
  if (quantized) w.add_u32("general.quantization_version", 2);
}

std::string plan_name(const QuantSpec& s) {
  std::string g = s.gran == Gran::group ? fmt::format("g{}", s.group) : to_string(s.gran);
  return fmt::format("{} {}-bit {}{}", to_string(s.scheme), s.bits, g, s.calibrator.empty() ? "" : " " + s.calibrator);
}

}  // namespace

std::vector<GgufTensorReport> export_gguf(const Model& m, const QuantPlan& plan, const std::string& path,
                                          const GgufExportOptions& opt) {
  TQ_CHECK_INPUT(opt.types == "exact" || opt.types == "kquant", "GGUF types policy '{}' (exact, kquant)", opt.types);
  for (auto& nt : named_tensors(const_cast<Model&>(m))) {
    if (nt.name.size() <= 5 || nt.name.compare(nt.name.size() - 5, 5, ".bias") != 0) continue;
    auto split = split_block_key(nt.name, m.cfg.n_layers);
    const bool qkv = split && (split->second == "attn_q.bias" || split->second == "attn_k.bias" ||
                               split->second == "attn_v.bias");
    if (m.cfg.arch != "qwen2" || !qkv)
      bad_input("GGUF export: '{}': llama.cpp's {} architecture has no such bias (a fold may have added it); "
                "keep this model in tquant's own format",
                nt.name, m.cfg.arch);
  }
  for (auto& [key, s] : plan.sites)
    if (!s.pre_inv.empty())
      bad_input("GGUF export: site {} carries a channel pre-transform that a GGUF model cannot express", key);
  struct Item {
    std::string name;
    const Tensor* t;
    uint32_t type;
    std::vector<uint8_t> bytes;
    GgufTensorReport r;
  };
  std::vector<Item> items;
  bool quantized = false;
  for (auto& nt : named_tensors(const_cast<Model&>(m))) {
    const Tensor& t = *nt.t;
    GgufTensorReport r;
    r.name = nt.name;
    r.plan = "float";
    uint32_t type = t.ndim() == 2 ? float_type(opt.float_type) : ggml_f32;
    r.how = t.ndim() == 2 ? "float weight" : "norm (llama.cpp keeps them f32)";
    std::vector<uint8_t> bytes;
    auto it = plan.weights.find(nt.name);
    auto g = plan.ggml.find(nt.name);
    if (g != plan.ggml.end()) {
      type = g->second.type;
      bytes = g->second.data;
      r.plan = ggml_type_info(type)->name;
      r.how = "the plan's ggml tensor, written as it is";
      quantized |= ggml_grid(type) != nullptr;
    } else if (it != plan.weights.end() && it->second.enabled()) {
      const QuantSpec& s = it->second;
      r.plan = plan_name(s);
      const TypeRule* rule = find_rule(opt.types, s, t.cols());
      if (t.cols() % 32 || !rule) {
        type = float_type(opt.fallback);
        r.how = rule ? fmt::format("fallback: rows of {} are not whole 32-blocks", t.cols())
                     : fmt::format("fallback: no ggml type holds {} codes", to_string(s.scheme));
      } else {
        type = rule->type;
        if (rule->codes) bytes = pack_codes(type, t, s);
        r.how = !bytes.empty() ? (s.scheme == Scheme::asym ? "plan codes, d = scale, m = -zero*scale (f16)"
                                                            : "plan codes, d = scale (f16)")
                               : "re-quantized from the plan's values";
        quantized = true;
      }
    }
    if (bytes.empty()) bytes = encode(type, t);
    r.type = ggml_type_info(type)->name;
    Tensor back(t.shape);
    ggml_type_info(type)->to_f32(bytes.data(), back.ptr(), back.numel());
    double num = 0, den = 0;
    for (int64_t i = 0; i < t.numel(); i++) {
      double d = (double)back.data[i] - t.data[i];
      r.max_abs_diff = std::max(r.max_abs_diff, std::fabs(d));
      num += d * d;
      den += (double)t.data[i] * t.data[i];
    }
    r.rel_rms = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    items.push_back({nt.name, &t, type, std::move(bytes), std::move(r)});
  }
  GgufWriter w;
  add_metadata(w, m, quantized);
  std::vector<GgufTensorReport> out;
  for (Item& it : items) {
    w.add_tensor(it.name, it.t->shape, it.type, std::move(it.bytes));
    out.push_back(std::move(it.r));
  }
  w.write(path);
  return out;
}

int64_t gguf_export_size(const Model& m, const std::map<std::string, uint32_t>& types) {
  bool quantized = false;
  for (auto& [name, t] : types) quantized |= ggml_grid(t) != nullptr;
  GgufWriter w;
  add_metadata(w, m, quantized);
  for (auto& nt : named_tensors(const_cast<Model&>(m))) {
    auto it = types.find(nt.name);
    w.add_tensor_layout(nt.name, nt.t->shape, it == types.end() ? ggml_f32 : it->second);
  }
  return (int64_t)w.file_size();
}

nlohmann::json to_json(const std::vector<GgufTensorReport>& r) {
  nlohmann::json a = nlohmann::json::array();
  for (auto& t : r)
    a.push_back({{"name", t.name}, {"plan", t.plan}, {"type", t.type}, {"how", t.how},
                 {"max_abs_diff", t.max_abs_diff}, {"rel_rms", t.rel_rms}, {"exact", t.exact()}});
  return a;
}

}  // namespace tq
