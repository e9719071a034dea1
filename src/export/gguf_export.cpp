#include "export/gguf_export.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/progress.h"
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
  // The type of every tensor is chosen first (from its plan and shape); the bytes are made
  // while the file is written, one tensor in f32 at a time, so a lazily loaded model is
  // exported without being expanded.
  struct Item {
    const Tensor* t;
    uint32_t type;
    const std::vector<uint8_t>* ggml;  // the plan's own ggml bytes, or null
    const QuantSpec* codes;             // pack the plan's codes, or null (encode the values)
  };
  std::vector<Item> items;
  std::vector<GgufTensorReport> out;
  bool quantized = false;
  auto named = named_tensors(const_cast<Model&>(m));
  for (auto& nt : named) {
    const Tensor& t = *nt.t;
    GgufTensorReport r;
    r.name = nt.name;
    r.plan = "float";
    Item item{&t, t.ndim() == 2 ? float_type(opt.float_type) : ggml_f32, nullptr, nullptr};
    r.how = t.ndim() == 2 ? "float weight" : "norm (llama.cpp keeps them f32)";
    auto it = plan.weights.find(nt.name);
    auto g = plan.ggml.find(nt.name);
    if (g != plan.ggml.end()) {
      item.type = g->second.type;
      item.ggml = &g->second.data;
      r.plan = ggml_type_info(item.type)->name;
      r.how = "the plan's ggml tensor, written as it is";
      quantized |= ggml_grid(item.type) != nullptr;
    } else if (it != plan.weights.end() && it->second.enabled()) {
      const QuantSpec& s = it->second;
      r.plan = plan_name(s);
      const TypeRule* rule = find_rule(opt.types, s, t.cols());
      if (t.cols() % 32 || !rule) {
        item.type = float_type(opt.fallback);
        r.how = rule ? fmt::format("fallback: rows of {} are not whole 32-blocks", t.cols())
                     : fmt::format("fallback: no ggml type holds {} codes", to_string(s.scheme));
      } else {
        item.type = rule->type;
        if (rule->codes) item.codes = &s;
        r.how = item.codes ? (s.scheme == Scheme::asym ? "plan codes, d = scale, m = -zero*scale (f16)"
                                                        : "plan codes, d = scale (f16)")
                           : "re-quantized from the plan's values";
        quantized = true;
      }
    }
    r.type = ggml_type_info(item.type)->name;
    items.push_back(item);
    out.push_back(std::move(r));
  }
  GgufWriter w;
  add_metadata(w, m, quantized);
  Progress prog("export", (int64_t)items.size(), "tensor");
  for (size_t i = 0; i < items.size(); i++) {
    const Item& it = items[i];
    w.add_tensor(named[i].name, it.t->shape, it.type, [&, i](uint8_t* dst) {
      const Item& it = items[i];
      Tensor t = *it.t;  // a stored tensor's values for this tensor only
      t.load_values();
      const GgmlTypeInfo* ti = ggml_type_info(it.type);
      const int64_t n = t.numel();
      GgufTensorReport& r = out[i];
      std::vector<uint8_t> bytes = it.ggml ? *it.ggml : it.codes ? pack_codes(it.type, t, *it.codes) : std::vector<uint8_t>{};
      if (!bytes.empty()) {
        std::memcpy(dst, bytes.data(), bytes.size());
      } else {
        ti->from_f32(t.ptr(), dst, n);
        if (it.codes) r.how = "re-quantized from the plan's values";  // a 32-block straddles two of its groups
      }
      // What the file's values differ by, decoded back in slices of whole rows.
      const int64_t cols = t.ndim() == 2 ? t.cols() : n, row_bytes = cols / ti->block * ti->bytes;
      const int64_t rows_per = std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, cols));
      std::vector<float> back((size_t)(std::min(n, rows_per * cols)));
      double num = 0, den = 0;
      for (int64_t r0 = 0; r0 * cols < n; r0 += rows_per) {
        const int64_t k0 = r0 * cols, k1 = std::min(n, (r0 + rows_per) * cols);
        ti->to_f32(dst + r0 * row_bytes, back.data(), k1 - k0);
        for (int64_t k = k0; k < k1; k++) {
          double d = (double)back[k - k0] - t.data[k];
          r.max_abs_diff = std::max(r.max_abs_diff, std::fabs(d));
          num += d * d;
          den += (double)t.data[k] * t.data[k];
        }
      }
      r.rel_rms = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
      if (it.t->stored) it.t->stored->evict();
      prog.add();
    });
  }
  w.write(path);
  prog.finish();
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
