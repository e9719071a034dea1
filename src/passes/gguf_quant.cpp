#include "passes/gguf_quant.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "core/ranks.h"
#include "export/gguf_export.h"
#include "io/ggml_types.h"
#include "io/imatrix.h"
#include "passes/awq.h"
#include "passes/site_scale.h"
#include "quant/fisher.h"
#include "quant/observer.h"

namespace tq {

namespace {

constexpr uint32_t kLegacy[] = {ggml_q4_0, ggml_q4_1, ggml_q5_0, ggml_q5_1, ggml_q8_0};
constexpr uint32_t kKQuants[] = {ggml_q2_k, ggml_q3_k, ggml_q4_k, ggml_q5_k, ggml_q6_k};

std::string lower(std::string s) {
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

// A 2-D weight of the file: what it reads (the site whose Hessian it has; "" for the token
// embedding, a lookup) and whether the scale search and GPTQ can use that Hessian.
struct Weight {
  std::string name;
  Tensor* t;
  std::string site;  // site key of its input, "" for a lookup
  bool lookup;       // token embedding (with a tied head it is also the head: site head_in)
};

std::string input_site(const std::string& name, int n_layers) {
  if (name == "output.weight") return site_key(Site::head_in, -1);
  auto w = parse_weight_name(name, n_layers);
  return w ? site_key(linear_def(w->slot).input, w->layer) : "";
}

std::vector<Weight> file_weights(Model& m) {
  std::vector<Weight> out;
  for (auto& nt : named_tensors(m)) {
    if (nt.t->ndim() != 2) continue;
    bool lookup = nt.name == "token_embd.weight";
    std::string site = lookup ? (m.cfg.tied_head ? site_key(Site::head_in, -1) : "") : input_site(nt.name, m.cfg.n_layers);
    if (!lookup && site.empty()) bad_input("GGUF quantization: no input site for '{}'", nt.name);
    out.push_back({nt.name, nt.t, site, lookup});
  }
  return out;
}

// Types a tensor with rows of `cols` can take.
std::vector<uint32_t> allowed_types(int64_t cols) {
  std::vector<uint32_t> t;
  if (cols % 32 == 0) t.insert(t.end(), std::begin(kLegacy), std::end(kLegacy));
  if (cols % 256 == 0) t.insert(t.end(), std::begin(kKQuants), std::end(kKQuants));
  t.push_back(ggml_f16);
  return t;
}

int64_t padded(int64_t bytes) { return (bytes + 31) / 32 * 32; }

struct Candidate {
  uint32_t type;
  std::string method;
  int64_t bytes = 0;
  double error = 0;
};

// What a tensor's candidates are scored with.
struct TensorStats {
  const Hessian* h = nullptr;       // its input's Hessian (null for a lookup)
  const GptqFactor* factor = nullptr;
  const Tensor* fisher = nullptr;
  std::vector<double> row_weight;   // φ (site tensors)
  std::vector<float> importance;    // E[x²] per input channel: the scale search's weights
};

GgmlTensor encode_candidate(const Weight& w, const Candidate& c, const TensorStats& st) {
  if (!ggml_grid(c.type)) return encode_ggml(c.type, *w.t);
  if (c.method == "ref") {  // ggml's reference encoder: what llama-quantize does without an imatrix
    GgmlTensor out{c.type, std::vector<uint8_t>(ggml_bytes(c.type, w.t->rows(), w.t->cols()))};
    ggml_type_info(c.type)->from_f32(w.t->ptr(), out.data.data(), w.t->numel());
    return out;
  }
  if (c.method == "gptq") {
    GgmlGptqGrid grid(c.type, (int)w.t->rows(), (int)w.t->cols());
    return grid.encode(gptq(*w.t, *st.factor, grid).w);
  }
  return encode_ggml(c.type, *w.t, st.importance);
}

// The estimated output KL a candidate adds: ½ Σ_o φ_o Δw_o E[xxᵀ] Δw_oᵀ for a linear, ½ Σ F Δw²
// for the token embedding (a lookup: no input correlations).
double estimate(const Weight& w, const Tensor& wq, const TensorStats& st) {
  if (!w.lookup) return 0.5 * output_error(*w.t, wq, *st.h, st.row_weight);
  double e = 0;
  for (int64_t i = 0; i < w.t->numel(); i++) {
    double d = (double)w.t->data[i] - wq.data[i];
    e += (double)st.fisher->data[i] * d * d;
  }
  return 0.5 * e;
}

// The multiple-choice knapsack solved exactly by dynamic programming over sizes in units
// (sizes rounded up to units, so the result always fits): the choice per item of least
// summed error whose summed size is at most `budget`.
std::vector<int> allocate_exact(const std::vector<std::vector<Candidate>>& items, int64_t budget) {
  int64_t unit = 32;
  while (budget / unit > 40000) unit *= 2;
  const int64_t B = budget / unit;
  std::vector<std::vector<int64_t>> size(items.size());
  int64_t smallest = 0;
  for (size_t i = 0; i < items.size(); i++) {
    int64_t mn = INT64_MAX;
    for (auto& c : items[i]) {
      size[i].push_back((c.bytes + unit - 1) / unit);
      mn = std::min(mn, c.bytes);
    }
    smallest += mn;
  }
  const double inf = INFINITY;
  std::vector<double> dp(B + 1, 0.0), next(B + 1);
  std::vector<std::vector<int8_t>> pick(items.size(), std::vector<int8_t>(B + 1, -1));
  for (size_t i = 0; i < items.size(); i++) {
    std::fill(next.begin(), next.end(), inf);
    for (int64_t b = 0; b <= B; b++)
      for (size_t c = 0; c < items[i].size(); c++) {
        if (size[i][c] > b || dp[b - size[i][c]] == inf) continue;
        double e = dp[b - size[i][c]] + items[i][c].error;
        if (e < next[b]) next[b] = e, pick[i][b] = (int8_t)c;
      }
    dp.swap(next);
  }
  if (dp[B] == inf)
    bad_input("the budget of {} bytes for the tensors cannot hold even their smallest types ({} bytes)", budget,
              smallest);
  std::vector<int> out(items.size());
  int64_t b = B;
  for (size_t i = items.size(); i-- > 0;) {
    out[i] = pick[i][b];
    b -= size[i][out[i]];
  }
  return out;
}

// The largest legacy type llama.cpp's rules could use everywhere within the budget: the type
// AWQ's search scores with.
uint32_t reference_type(Model& m, int64_t max_bytes) {
  for (uint32_t t : {ggml_q8_0, ggml_q5_1, ggml_q5_0, ggml_q4_1, ggml_q4_0}) {
    std::map<std::string, uint32_t> types;
    for (auto& w : file_weights(m)) types[w.name] = llama_rule_type(w.name, w.t->cols(), t);
    if (gguf_export_size(m, types) <= max_bytes) return t;
  }
  return ggml_q4_0;
}

}  // namespace

uint32_t llama_rule_type(const std::string& name, int64_t cols, uint32_t base) {
  uint32_t t = base;
  if (name == "output.weight") t = base == ggml_q8_0 || cols % 256 ? ggml_q8_0 : ggml_q6_k;
  if (ggml_grid(t) && ggml_grid(t)->block == 256 && cols % 256) {  // llama.cpp's fallbacks for K types
    switch (t) {
      case ggml_q2_k:
      case ggml_q3_k: t = ggml_q4_0; break;
      case ggml_q4_k: t = ggml_q5_0; break;
      case ggml_q5_k: t = ggml_q5_1; break;
      default: t = ggml_q8_0;
    }
  }
  if (ggml_grid(t) && cols % ggml_grid(t)->block) t = ggml_f16;
  return t;
}

std::string llama_quantize_args(const std::vector<GgufChoice>& choices) {
  std::map<uint32_t, int> count;
  for (auto& c : choices)
    if (c.name != "token_embd.weight" && c.name != "output.weight") count[c.type]++;
  uint32_t base = ggml_q8_0;
  int most = -1;
  for (auto& [t, n] : count)
    if (n > most) most = n, base = t;
  std::string out;
  for (auto& c : choices) {
    std::string type = lower(ggml_type_info(c.type)->name);
    if (c.name == "token_embd.weight") out += fmt::format("--token-embedding-type {} ", type);
    else if (c.name == "output.weight") out += fmt::format("--output-tensor-type {} ", type);
    else if (c.type != base) {
      std::string pat = c.name.substr(0, c.name.size() - 7);  // without ".weight"
      std::string esc;
      for (char ch : pat) esc += ch == '.' ? std::string("\\.") : std::string(1, ch);
      out += fmt::format("--tensor-type '{}={}' ", esc, type);
    }
  }
  return out + lower(ggml_type_info(base)->name);
}

GgufQuantResult gguf_quantize(Model& m, QuantPlan& plan, const CalibData& calib, const GgufQuantOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  TQ_CHECK_INPUT(m.cfg.arch == "llama" || m.cfg.arch == "qwen2", "GGUF quantization writes llama and qwen2 models, not {}",
                 m.cfg.arch);
  TQ_CHECK_INPUT(!calib.empty(), "GGUF quantization needs calibration data (--calib)");
  TQ_CHECK_INPUT(opt.method == "auto" || opt.method == "rtn" || opt.method == "gptq",
                 "GGUF method '{}' (auto, rtn, gptq)", opt.method);
  const bool automatic = lower(opt.type) == "auto";
  const uint32_t base = automatic ? 0 : ggml_type_from_name(opt.type);
  TQ_CHECK_INPUT(automatic || ggml_grid(base) || base == ggml_f16, "GGUF base type {} is not a quantized type",
                 opt.type);
  int64_t max_bytes = opt.max_bytes;
  TQ_CHECK_INPUT(automatic || (opt.max_bytes <= 0 && opt.max_bpw <= 0),
                 "a size limit (--max-bytes, --max-bpw) is for auto-gguf; gguf-{} follows llama.cpp's rules", opt.type);
  if (automatic) {
    TQ_CHECK_INPUT(opt.max_bytes > 0 || opt.max_bpw > 0, "auto-gguf needs a size: --max-bytes N or --max-bpw B");
    if (max_bytes <= 0) max_bytes = (int64_t)std::floor(opt.max_bpw * (double)parameter_count(m) / 8);
  }
  for (auto& nt : named_tensors(m))
    if (plan.weights.count(nt.name) || plan.ggml.count(nt.name))
      bad_input("GGUF quantization: '{}' is already quantized by an earlier pass", nt.name);
  GgufQuantResult res;

  // Statistics: every linear input's Hessian and the Fisher of every weight, in one pass.
  HessianObserver hobs;
  Fisher fisher = fisher_diag(m, calib.batches, {opt.seed, opt.fisher_batches}, &hobs);
  std::map<std::string, Hessian>& hs = hobs.h;
  auto row_weights = [&](const Weight& w) {
    return fisher_row_weights(fisher.f.at(w.name), hs.at(w.site).mean_square());
  };

  std::map<std::string, std::vector<double>> awq_scales;  // by site: its inputs were multiplied by s
  if (opt.awq) {
    const uint32_t ref = automatic ? reference_type(m, max_bytes) : base;
    AwqQuantizer q = [&](const std::string& name, const Tensor& w, const std::vector<float>& imp) {
      uint32_t t = llama_rule_type(name, w.cols(), ref);
      GgmlTensor g = ggml_grid(t) ? encode_ggml(t, w, imp) : encode_ggml(t, w);
      return decode_ggml(g, w.shape);
    };
    RowWeights rows;
    for (auto& w : file_weights(m))
      if (!w.lookup) rows[w.name] = row_weights(w);
    Progress prog("gguf: awq", m.cfg.n_layers, "layer");
    for (int l = 0; l < m.cfg.n_layers; l++) {
      std::map<std::string, std::vector<double>> scales;
      nlohmann::json r = awq_block(m, plan, l, hs, q, {}, rows, &scales);
      res.awq.update(r);
      awq_scales.insert(scales.begin(), scales.end());
      // The Fisher of the folded weights: a reader's columns ÷ s give F·s², up's rows ⊙ s give F/s².
      for (auto& [key, s] : scales) {
        bool down = key.size() > 7 && key.compare(key.size() - 7, 7, "down_in") == 0;
        for (auto& nl : site_readers(m.blocks[l], *site_from_name(key.substr(key.find('.', 4) + 1)))) {
          Tensor& f = fisher.f.at(weight_name(l, nl.slot));
          for (int64_t o = 0; o < f.rows(); o++)
            for (int64_t c = 0; c < f.cols(); c++) f.row(o)[c] = (float)((double)f.row(o)[c] * s[c] * s[c]);
        }
        if (down) {
          Tensor& f = fisher.f.at(weight_name(l, Slot::up));
          for (int64_t r = 0; r < f.rows(); r++)
            for (int64_t c = 0; c < f.cols(); c++) f.row(r)[c] = (float)((double)f.row(r)[c] / (s[r] * s[r]));
        }
      }
      prog.add();
    }
    res.awq_type = ggml_type_info(ref)->name;
  }

  // Candidates: (type, method) per tensor with their size and estimated KL.
  std::vector<Weight> weights = file_weights(m);
  std::optional<Imatrix> imatrix;
  if (!opt.imatrix_file.empty()) imatrix = read_imatrix(opt.imatrix_file);
  // E[x²] of a weight's input: the file's (of the unfolded model: times s² where AWQ scaled the
  // input by s), or the calibration's.
  auto importance = [&](const Weight& w, const Hessian& h) {
    if (!imatrix || !imatrix->entries.count(w.name)) return h.mean_square();
    std::vector<float> e = imatrix->mean_square(w.name, w.t->cols());
    auto s = awq_scales.find(w.site);
    if (s != awq_scales.end())
      for (size_t c = 0; c < e.size(); c++) e[c] = (float)((double)e[c] * s->second[c] * s->second[c]);
    return e;
  };
  std::map<std::string, GptqFactor> factors;
  std::vector<TensorStats> stats(weights.size());
  std::vector<std::vector<Candidate>> items(weights.size());
  int64_t n_cand = 0;
  for (size_t i = 0; i < weights.size(); i++) {
    const Weight& w = weights[i];
    TensorStats& st = stats[i];
    st.fisher = &fisher.f.at(w.name);
    if (!w.site.empty()) {
      st.h = &hs.at(w.site);
      st.importance = importance(w, *st.h);
      if (!w.lookup) {
        st.row_weight = row_weights(w);
        if (!factors.count(w.site)) factors.emplace(w.site, gptq_factor(*st.h, opt.gptq));
        st.factor = &factors.at(w.site);
      }
    }
    std::vector<uint32_t> types = automatic ? allowed_types(w.t->cols())
                                            : std::vector<uint32_t>{llama_rule_type(w.name, w.t->cols(), base)};
    if (const TensorRule* r = find_rule(opt.tensor_types, w.name)) {
      const GgmlTypeInfo* ti = ggml_type_info(r->type);
      if (w.t->cols() % ti->block)
        bad_input("tensor_types: '{}' puts {} in {}, whose blocks of {} do not divide its {} columns", r->match,
                  w.name, ti->name, ti->block, w.t->cols());
      types = {r->type};
    }
    for (uint32_t t : types) {
      if (!ggml_grid(t)) {
        items[i].push_back({t, "f16"});
        continue;
      }
      if (!opt.imatrix) {
        items[i].push_back({t, "ref"});
        continue;
      }
      if (opt.method != "gptq" || !st.factor) items[i].push_back({t, "rtn"});
      if (opt.method != "rtn" && st.factor) items[i].push_back({t, "gptq"});
    }
    n_cand += (int64_t)items[i].size();
  }
  {
    std::vector<std::pair<size_t, size_t>> work;
    for (size_t i = 0; i < items.size(); i++)
      for (size_t c = 0; c < items[i].size(); c++) work.push_back({i, c});
    // Each candidate is scored from the float weights alone, so under mpirun the list splits
    // over the ranks and the (bytes, error) pairs gather in candidate order (core/ranks.h).
    const ranks::Share mine = ranks::my_share((int64_t)work.size());
    std::vector<std::vector<double>> scored(mine.end - mine.begin);
    Progress prog("gguf: candidates", (int64_t)scored.size(), "candidate");
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t k = mine.begin; k < mine.end; k++) {
      auto [i, c] = work[k];
      GgmlTensor g = encode_candidate(weights[i], items[i][c], stats[i]);
      scored[k - mine.begin] = {(double)g.data.size(), estimate(weights[i], decode_ggml(g, weights[i].t->shape), stats[i])};
#pragma omp critical
      prog.add();
    }
    prog.finish();
    scored = ranks::gather_items((int64_t)work.size(), scored);
    for (size_t k = 0; k < work.size(); k++) {
      Candidate& cand = items[work[k].first][work[k].second];
      cand.bytes = (int64_t)scored[k][0];
      cand.error = scored[k][1];
    }
  }

  // The choice: the least summed estimate within the budget (fixed types: the only candidate
  // per tensor, the better method).
  std::vector<int> pick(items.size(), 0);
  if (automatic) {
    std::map<std::string, uint32_t> types;  // overhead: header and the tensors that are not 2-D
    int64_t tensors = 0;
    for (size_t i = 0; i < weights.size(); i++) {
      types[weights[i].name] = items[i][0].type;
      tensors += padded(items[i][0].bytes);
    }
    const int64_t overhead = gguf_export_size(m, types) - tensors;
    std::vector<std::vector<Candidate>> sized = items;
    for (auto& it : sized)
      for (auto& c : it) c.bytes = padded(c.bytes);
    TQ_CHECK_INPUT(max_bytes > overhead, "--max-bytes {} does not even hold the header and norms ({} bytes)", max_bytes,
                   overhead);
    pick = allocate_exact(sized, max_bytes - overhead);
  } else {
    for (size_t i = 0; i < items.size(); i++)
      for (size_t c = 1; c < items[i].size(); c++)
        if (items[i][c].error < items[i][pick[i]].error) pick[i] = (int)c;
  }

  // Apply: the chosen encodings (recomputed: the same bits as scored) into the plan and the model.
  std::map<std::string, uint32_t> chosen_types;
  for (size_t i = 0; i < weights.size(); i++) {
    const Candidate& c = items[i][pick[i]];
    GgmlTensor g = encode_candidate(weights[i], c, stats[i]);
    *weights[i].t = decode_ggml(g, weights[i].t->shape);
    plan.ggml[weights[i].name] = std::move(g);
    chosen_types[weights[i].name] = c.type;
    res.choices.push_back({weights[i].name, c.type, c.method, c.bytes, c.error});
    res.predicted_kl += c.error;
  }
  res.file_bytes = gguf_export_size(m, chosen_types);
  if (automatic && res.file_bytes > max_bytes)
    run_failed("GGUF allocation: the file would be {} bytes, over the budget of {}", res.file_bytes, max_bytes);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

namespace {

void run_gguf(PassContext& ctx, const nlohmann::json& p) {
  GgufQuantOptions o;
  o.type = p["type"];
  o.max_bytes = (int64_t)p["max_bytes"].get<double>();
  o.max_bpw = p["max_bpw"];
  o.method = p["method"];
  o.imatrix = p["imatrix"];
  o.imatrix_file = p["imatrix_file"];
  o.tensor_types = parse_tensor_rules(JsonAt(p["tensor_types"], "tensor_types"));
  for (auto& r : o.tensor_types)
    TQ_CHECK_INPUT(r.type, "tensor_types: the rule for '{}' needs a ggml \"type\"", r.match);
  o.awq = p["awq"];
  o.gptq.damp = p["damp"];
  o.gptq.act_order = p["act_order"];
  o.fisher_batches = p["fisher_batches"];
  o.check = p["check"];
  o.seed = ctx.seed;
  Model fp = o.check ? ctx.model : Model{};
  GgufQuantResult r = gguf_quantize(ctx.model, ctx.plan, ctx.calib, o);
  ctx.model_changed();
  if (o.check) r.measured_kl = calib_kld(ctx.model, no_hooks(), fp, ctx.calib);
  nlohmann::json tensors = nlohmann::json::object();
  for (auto& c : r.choices)
    tensors[c.name] = {{"type", ggml_type_info(c.type)->name}, {"method", c.method}, {"bytes", c.bytes},
                       {"estimated_kl", c.error}};
  std::string args = llama_quantize_args(r.choices);
  ctx.plan.notes["gguf"] = {
      {"type", o.type},
      {"max_bytes", o.max_bytes},
      {"file_bytes", r.file_bytes},
      {"estimated_kl", r.predicted_kl},
      {"measured_calib_kl", r.measured_kl >= 0 ? nlohmann::json(r.measured_kl) : nlohmann::json(nullptr)},
      {"estimate", "per tensor 1/2 sum_o phi_o dW_o E[x x^T] dW_o^T (phi: Fisher row weights), token "
                   "embedding 1/2 sum F dW^2; summed over tensors"},
      {"seconds", r.seconds},
      {"awq", {{"scored_with", r.awq_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.awq_type)},
               {"sites", r.awq}}},
      {"llama_quantize", args},
      {"tensors", tensors}};
  fmt::print(stderr, "gguf: {} tensors, file {} bytes, estimated KL {:.5f}{}; {:.1f} s\n", r.choices.size(),
             r.file_bytes, r.predicted_kl,
             r.measured_kl >= 0 ? fmt::format(", measured on the calibration data {:.5f}", r.measured_kl) : "",
             r.seconds);
  fmt::print(stderr, "gguf: as llama-quantize rules: {}\n", args);
}

}  // namespace

PassDef gguf_pass() {
  return {"gguf",
          "every tensor llama.cpp quantizes in a ggml type: llama.cpp's rules for a base type, or (type auto) the "
          "type and method per tensor of least estimated output KL within --max-bytes / --max-bpw",
          {
              {"type", "auto", "auto, or a base type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K) with llama.cpp's rules"},
              {"max_bytes", 0.0, "auto: the GGUF file's size limit in bytes", {}, 0, 1e18},
              {"max_bpw", 0.0, "auto: or the limit in bits per parameter of the whole file", {}, 0, 64},
              {"method", "auto", "rtn, gptq, or auto (the lower estimate per tensor and type)", {"auto", "rtn", "gptq"}},
              {"imatrix", true, "activation-weighted scale search (false: ggml's reference encoders, as llama-quantize "
                                "without an imatrix)"},
              {"imatrix_file", "", "an importance matrix of llama.cpp (imatrix.gguf or .dat) that weighs the scale "
                                   "search for the tensors it holds"},
              {"tensor_types", nlohmann::json::array(), "{\"match\": REGEX, \"type\": T} rules: matching tensors in "
                                                        "ggml type T (a recipe's \"rules\" with a type land here)"},
              {"awq", true, "AWQ's activation-aware scales at qkv_in, up_in, down_in first"},
              {"damp", 0.01, "GPTQ dampening (fraction of the mean Hessian diagonal)", {}, 0, 10},
              {"act_order", true, "GPTQ in order of decreasing input energy"},
              {"fisher_batches", 32, "calibration batches with a backward pass for the Fisher estimate (0: all; the "
                                     "Hessians always use every batch)", {}, 0, 1 << 20},
              {"check", false, "also measure the exact output KL on the calibration data (a whole-model step)"},
          },
          run_gguf};
}

}  // namespace tq
