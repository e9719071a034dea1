#include "io/tquant_dir.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/checked.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mmap.h"
#include "core/parallel.h"
#include "io/atomic_file.h"
#include "io/ggml_types.h"
#include "io/hf.h"
#include "io/safetensors.h"
#include "io/utf8.h"

namespace tq {

// 2: 4-bit codes two to a byte; the tensors in model.safetensors or in shards with an index.
static const char* const kFormat = "tquant-model-2";

bool is_tquant_dir(const std::string& path) {
  return is_directory(path) && file_exists(path + "/plan.json") && file_exists(path + "/config.json");
}

// Enum fields travel as their names.
template <class E>
static std::string ename(E e, std::initializer_list<std::pair<E, const char*>> names) {
  for (auto& [v, n] : names)
    if (v == e) return n;
  return "?";
}
template <class E>
static E evalue(const JsonAt& j, const char* key, std::initializer_list<std::pair<E, const char*>> names) {
  std::string s = j[key].string(), all;
  for (auto& [v, n] : names) {
    if (s == n) return v;
    all += (all.empty() ? "" : ", ") + std::string(n);
  }
  j[key].fail("unknown value '{}' ({})", s, all);
}
#define NORMS {{NormKind::rms, "rms"}, {NormKind::layer, "layer"}}
#define ACTS {{ActKind::silu, "silu"}, {ActKind::gelu, "gelu"}, {ActKind::gelu_tanh, "gelu_tanh"}, {ActKind::relu, "relu"}}
#define POSS {{PosKind::none, "none"}, {PosKind::learned, "learned"}, {PosKind::rope, "rope"}}
#define ROPES {{RopeLayout::pairs, "pairs"}, {RopeLayout::halves, "halves"}}
#define EMBEDS {{EmbedKind::tokens, "tokens"}, {EmbedKind::patches, "patches"}}
#define POOLS {{PoolKind::none, "none"}, {PoolKind::first, "first"}, {PoolKind::mean, "mean"}}

nlohmann::json config_to_json(const Config& c) {
  return {{"arch", c.arch}, {"dim", c.dim}, {"n_layers", c.n_layers}, {"n_heads", c.n_heads},
          {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim}, {"hidden", c.hidden}, {"vocab", c.vocab},
          {"n_out", c.n_out}, {"max_seq", c.max_seq}, {"norm", ename(c.norm, NORMS)}, {"norm_eps", c.norm_eps},
          {"act", ename(c.act, ACTS)}, {"gated", c.gated}, {"post_norm", c.post_norm}, {"causal", c.causal},
          {"sliding_window", c.sliding_window},
          {"pos", ename(c.pos, POSS)}, {"rope_layout", ename(c.rope_layout, ROPES)}, {"rope_theta", c.rope_theta},
          {"pos_offset", c.pos_offset}, {"embed", ename(c.embed, EMBEDS)}, {"patch_dim", c.patch_dim},
          {"image_size", c.image_size}, {"patch_size", c.patch_size}, {"channels", c.channels},
          {"cls_token", c.cls_token}, {"pool", ename(c.pool, POOLS)}, {"pooler", c.pooler},
          {"tied_head", c.tied_head}, {"n_types", c.n_types}, {"pixel_mean", c.pixel_mean},
          {"pixel_std", c.pixel_std}};
}

Config config_from_json(const JsonAt& j) {
  Config c;
  auto size = [&](const char* key) { return (int)j[key].integer(0, 1 << 30); };
  c.arch = j["arch"].string();
  c.dim = size("dim");
  c.n_layers = size("n_layers");
  c.n_heads = size("n_heads");
  c.n_kv_heads = size("n_kv_heads");
  c.head_dim = size("head_dim");
  c.hidden = size("hidden");
  c.vocab = size("vocab");
  c.n_out = size("n_out");
  c.max_seq = size("max_seq");
  c.norm = evalue<NormKind>(j, "norm", NORMS);
  c.norm_eps = (float)j["norm_eps"].number();
  c.act = evalue<ActKind>(j, "act", ACTS);
  c.gated = j["gated"].boolean();
  c.post_norm = j["post_norm"].boolean();
  c.causal = j["causal"].boolean();
  c.sliding_window = (int)j.integer("sliding_window", 0, 1 << 24, 0);
  c.pos = evalue<PosKind>(j, "pos", POSS);
  c.rope_layout = evalue<RopeLayout>(j, "rope_layout", ROPES);
  c.rope_theta = (float)j["rope_theta"].number();
  c.pos_offset = size("pos_offset");
  c.embed = evalue<EmbedKind>(j, "embed", EMBEDS);
  c.patch_dim = size("patch_dim");
  c.image_size = (int)j.integer("image_size", 0, 1 << 30, 0);
  c.patch_size = (int)j.integer("patch_size", 0, 1 << 30, 0);
  c.channels = (int)j.integer("channels", 0, 1 << 30, 0);
  c.cls_token = j["cls_token"].boolean();
  c.pool = evalue<PoolKind>(j, "pool", POOLS);
  c.pooler = j["pooler"].boolean();
  c.tied_head = j["tied_head"].boolean();
  c.n_types = size("n_types");
  if (j.has("pixel_mean")) c.pixel_mean = j["pixel_mean"].floats();
  if (j.has("pixel_std")) c.pixel_std = j["pixel_std"].floats();
  return c;
}

// Pieces that are not valid UTF-8 (raw bytes) travel as {"hex": "..."}.
static nlohmann::json piece_json(const std::string& p) {
  if (valid_utf8(p)) return p;
  std::string hex;
  for (unsigned char ch : p) hex += fmt::format("{:02x}", ch);
  return {{"hex", hex}};
}
static std::string piece_from(const JsonAt& j) {
  if (j.json().is_string()) return j.string();
  std::string hex = j["hex"].string(), out;
  if (hex.size() % 2) j["hex"].fail("has an odd number of digits");
  for (size_t i = 0; i < hex.size(); i += 2)
    out += (char)parse_int(std::string_view(hex).substr(i, 2), 0, 255, j["hex"].where(), 16);
  return out;
}

static const std::initializer_list<std::pair<TokKind, const char*>> kTokKinds = {
    {TokKind::none, "none"}, {TokKind::spm, "spm"}, {TokKind::bpe, "bpe"}, {TokKind::wordpiece, "wordpiece"}};

nlohmann::json tokenizer_to_json(const Tokenizer& t) {
  nlohmann::json pieces = nlohmann::json::array();
  for (auto& p : t.pieces) pieces.push_back(piece_json(p));
  return {{"kind", ename(t.kind, kTokKinds)}, {"pieces", pieces}, {"scores", t.scores}, {"types", t.types},
          {"merges", t.merges}, {"bos", t.bos}, {"eos", t.eos}, {"unk", t.unk}, {"pad", t.pad}, {"sep", t.sep},
          {"cls", t.cls}, {"mask", t.mask}, {"add_bos", t.add_bos}, {"add_space_prefix", t.add_space_prefix},
          {"lowercase", t.lowercase}, {"split", bpe_split_name(t.split)}, {"ignore_merges", t.ignore_merges},
          {"nfc", t.nfc}};
}

Tokenizer tokenizer_from_json(const JsonAt& j) {
  Tokenizer t;
  t.kind = evalue<TokKind>(j, "kind", kTokKinds);
  for (auto& p : j["pieces"].elements()) t.pieces.push_back(piece_from(p));
  t.scores = j["scores"].floats();
  for (auto& v : j["types"].elements()) t.types.push_back((int32_t)v.integer(INT32_MIN, INT32_MAX));
  t.merges = j["merges"].strings();
  for (auto [key, id] : {std::pair{"bos", &t.bos}, {"eos", &t.eos}, {"unk", &t.unk}, {"pad", &t.pad},
                         {"sep", &t.sep}, {"cls", &t.cls}, {"mask", &t.mask}})
    *id = (int)j[key].integer(-1, (int64_t)t.pieces.size() - 1);
  t.add_bos = j["add_bos"].boolean();
  t.add_space_prefix = j["add_space_prefix"].boolean();
  t.lowercase = j["lowercase"].boolean();
  t.split = bpe_split_named(j.string("split", "gpt-2"));  // absent in directories written before Llama-3's split
  t.ignore_merges = j.boolean("ignore_merges", false);
  t.nfc = j.boolean("nfc", false);
  t.finalize();
  return t;
}

// A float tensor as it will be read back: stored F16/BF16/F32 bytes as they are (a
// lazily loaded model is not expanded), anything else as f32, one tensor in memory at a time.
static SafeTensorOut float_tensor(const std::string& name, const Tensor& t) {
  if (t.has_values() || !t.stored) return f32_tensor(name, t);
  const Stored& st = *t.stored;
  const std::string type = st.type->name;
  const std::string dtype = type == "F16" ? "F16" : type == "BF16" ? "BF16" : type == "F32" ? "F32" : "";
  if (!dtype.empty())
    return {name, dtype, t.shape, {}, [&st](uint8_t* dst) { std::memcpy(dst, st.bytes, (size_t)st.nbytes()); }};
  return {name, "F32", t.shape, {}, [&st](uint8_t* dst) {
            st.rows_to_f32(0, st.rows, reinterpret_cast<float*>(dst));
            st.evict();
          }};
}

// Codes in model.safetensors: one byte each (I8 for symmetric, U8 otherwise; a log
// quantizer's zero code -1 as 0xFF), or, for affine quantizers of at most 4 bits, two to a
// byte (U8, the first code in the low nibble, a symmetric code as its 4-bit two's
// complement, every row starting on a byte): half the bytes to write and to map.
static bool packs_nibbles(const QuantSpec& q) {
  return q.bits <= 4 && (q.scheme == Scheme::sym || q.scheme == Scheme::asym);
}
static int64_t code_row_bytes(const QuantSpec& q, int64_t cols) { return packs_nibbles(q) ? (cols + 1) / 2 : cols; }
// The stored shape of a [rows, cols] weight's codes: its own, or [rows, packed row bytes].
static std::vector<int64_t> code_shape(const QuantSpec& q, const std::vector<int64_t>& shape, int64_t rows,
                                       int64_t cols) {
  const int64_t row_bytes = code_row_bytes(q, cols);
  return row_bytes == cols ? shape : std::vector<int64_t>{rows, row_bytes};
}
static const char* code_dtype(const QuantSpec& q) { return q.scheme == Scheme::sym && !packs_nibbles(q) ? "I8" : "U8"; }

static void pack_code_row(const int32_t* c, int64_t cols, const QuantSpec& q, uint8_t* out) {
  if (!packs_nibbles(q)) {
    for (int64_t i = 0; i < cols; i++) out[i] = (uint8_t)(c[i] & 0xff);
    return;
  }
  for (int64_t i = 0; i < cols; i += 2)
    out[i / 2] = (uint8_t)((c[i] & 0xf) | (i + 1 < cols ? (c[i + 1] & 0xf) << 4 : 0));
}
static void unpack_code_row(const uint8_t* b, int64_t cols, const QuantSpec& q, int32_t* out) {
  const bool sym = q.scheme == Scheme::sym, log = q.scheme == Scheme::log2 || q.scheme == Scheme::logsqrt2;
  if (!packs_nibbles(q)) {
    for (int64_t i = 0; i < cols; i++) out[i] = sym ? (int32_t)(int8_t)b[i] : (log && b[i] == 0xff) ? -1 : (int32_t)b[i];
    return;
  }
  for (int64_t i = 0; i < cols; i++) {
    int32_t v = (b[i / 2] >> (i % 2 * 4)) & 0xf;
    out[i] = sym && v >= 8 ? v - 16 : v;
  }
}

std::vector<SafeTensorOut> encode_tensors(const std::vector<NamedTensor>& tensors, const QuantPlan& plan) {
  std::vector<SafeTensorOut> ts;
  for (auto& nt : tensors) {
    auto g = plan.ggml.find(nt.name);
    if (g != plan.ggml.end()) {  // the encoded rows as they are: [rows, bytes per row]
      const int64_t rows = nt.t->numel() / nt.t->shape.back();
      ts.push_back({nt.name, "U8", {rows, (int64_t)g->second.data.size() / rows}, g->second.data});
      continue;
    }
    auto it = plan.weights.find(nt.name);
    if (it == plan.weights.end() || !it->second.enabled()) {
      ts.push_back(float_tensor(nt.name, *nt.t));
      continue;
    }
    const QuantSpec& q = it->second;
    const Tensor& w = *nt.t;
    const int64_t rows = w.rows(), cols = w.cols(), row_bytes = code_row_bytes(q, cols);
    // Made while the file is written, so a tensor's codes never exist as int32 all at once.
    const auto fill = [&w, &q, rows, cols, row_bytes](uint8_t* dst) {
      constexpr int64_t kRows = 64;
      parallel_for((rows + kRows - 1) / kRows, [&](int64_t b) {
        const int64_t r0 = b * kRows, n = std::min(kRows, rows - r0);
        std::vector<int32_t> codes((size_t)(n * cols));
        quantize_codes(w.ptr() + r0 * cols, (int)n, (int)cols, q.rows(r0, n, cols), codes.data());
        for (int64_t r = 0; r < n; r++) pack_code_row(codes.data() + r * cols, cols, q, dst + (r0 + r) * row_bytes);
      });
    };
    ts.push_back({nt.name, code_dtype(q), code_shape(q, w.shape, rows, cols), {}, fill});
    Tensor sc({(int64_t)q.scale.size()});
    sc.data = q.scale;
    ts.push_back(f32_tensor(nt.name + ".scale", sc));
    if (!q.zero.empty()) {
      Tensor z({(int64_t)q.zero.size()});
      z.data = q.zero;
      ts.push_back(f32_tensor(nt.name + ".zero", z));
    }
  }
  return ts;
}

static void write_tquant_json(const AtomicDir& out, const Model& fp, const QuantPlan& plan,
                              const nlohmann::json& extra) {
  nlohmann::json cfg = {{"format", kFormat}, {"config", config_to_json(fp.cfg)}, {"labels", fp.labels}};
  if (!fp.tok.empty()) cfg["tokenizer"] = tokenizer_to_json(fp.tok);
  for (auto& [k, v] : extra.items()) cfg[k] = v;
  write_file_atomic(out.file("config.json"), cfg.dump(1) + "\n");
  write_file_atomic(out.file("plan.json"), plan.to_json(false).dump(1) + "\n");
}

void save_tquant_dir(const std::string& dir, const Model& fp, const QuantPlan& plan, const nlohmann::json& extra) {
  AtomicDir out(dir);
  write_tquant_json(out, fp, plan, extra);
  write_safetensors(out.file("model.safetensors"), encode_tensors(named_tensors(const_cast<Model&>(fp)), plan),
                    {{"format", kFormat}});
  out.commit();
}

void finish_tquant_dir(AtomicDir& out, const std::vector<std::string>& shards, const Model& fp,
                       const QuantPlan& plan, const nlohmann::json& extra) {
  // The shards stay as they are (copying them into one file would write the model twice);
  // model.safetensors.index.json names the shard of every tensor, as Hugging Face's does.
  nlohmann::json map = nlohmann::json::object();
  for (auto& s : shards) {
    const std::string file = std::filesystem::path(s).filename().string();
    for (auto& t : read_safetensors(s).tensors) map[t.name] = file;
  }
  write_file_atomic(out.file("model.safetensors.index.json"),
                    nlohmann::json{{"metadata", {{"format", kFormat}}}, {"weight_map", map}}.dump(1) + "\n");
  write_tquant_json(out, fp, plan, extra);
  out.commit();
}

// The codes of a quantized weight left in the file: rows decode to exactly the values
// dequantize_codes gives for the whole tensor.
static Tensor stored_codes(const SafeTensor& t, const std::vector<int64_t>& shape, const QuantSpec& q,
                           std::shared_ptr<const void> keep) {
  static const GgmlTypeInfo codes_type{"codes", 1, 1, nullptr, nullptr};
  Tensor out = stored_tensor(shape, &codes_type, t.bytes.data(), std::move(keep));
  auto s = std::make_shared<Stored>(*out.stored);
  const int64_t cols = s->cols, row_bytes = code_row_bytes(q, cols);
  s->row_bytes = row_bytes;  // what evict() releases: the packed rows, not a byte per value
  s->decode = [bytes = t.bytes.data(), cols, row_bytes, q](int64_t r0, int64_t n, float* dst) {
    std::vector<int32_t> codes((size_t)(n * cols));
    for (int64_t r = 0; r < n; r++) unpack_code_row(bytes + (r0 + r) * row_bytes, cols, q, codes.data() + r * cols);
    dequantize_codes(codes.data(), (int)n, (int)cols, q.rows(r0, n, cols), dst);
  };
  out.stored = std::move(s);
  return out;
}

Model load_tquant_dir(const std::string& dir, QuantPlan* plan_out, bool lazy) {

  const std::string cfg_path = dir + "/config.json", plan_path = dir + "/plan.json";
  nlohmann::json cfg_doc = read_json_file(cfg_path), plan_doc = read_json_file(plan_path);
  JsonAt cfg(cfg_doc, cfg_path);
  const std::string format = cfg.object().string("format", "");
  if (format == "tquant-model-1")
    bad_input("{}: written by an earlier tquant (a byte per 4-bit code, one model.safetensors); quantize the model "
              "again", cfg_path);
  if (format != kFormat) bad_input("{} is not a tquant model", cfg_path);
  Model m;
  m.cfg = config_from_json(cfg["config"]);
  QuantPlan plan = QuantPlan::from_json(JsonAt(plan_doc, plan_path));
  // model.safetensors, or (a block-sequential run) a shard per block and model.safetensors.index.json
  HfWeights st = read_hf_weights(dir, lazy);
  int64_t values = 0;  // what the files hold, ggml rows counted as the values they decode to
  std::set<std::string> names;
  for (auto& f : st.files)
    for (auto& t : f.tensors) {
      if (!names.insert(t.name).second) bad_input("{}: '{}' is stored twice", dir, t.name);
      auto g = plan.ggml.find(t.name);
      const GgmlTypeInfo* ti = g != plan.ggml.end() ? ggml_type_info(g->second.type) : nullptr;
      auto w = plan.weights.find(t.name);
      const bool nibbles = w != plan.weights.end() && w->second.enabled() && packs_nibbles(w->second);
      values += ti ? t.numel() / ti->bytes * ti->block : nibbles ? 2 * t.numel() : t.numel();
    }
  try {
    validate_config(m.cfg, values);
  } catch (const Error& e) {
    throw Error(e.exit_code, cfg_path + ": " + e.what());
  }
  check_plan_sites(plan, m.cfg, plan_path);
  allocate(m, true, true, !lazy);  // biases are optional: those the file lacks are dropped
  // The matrices the forward reads where they are stored: the block linears, the embedding, the head.
  auto runs_stored = [&](const std::string& name) {
    return name == "token_embd.weight" || name == "output.weight" || parse_weight_name(name, m.cfg.n_layers);
  };
  // Norms that only some families have: the final one (absent in some ViTs), BERT's embedding norm.
  if (!st.find("output_norm.weight")) m.final_norm = Norm{};
  if (st.find("token_embd_norm.weight")) m.embd_norm = {Tensor({m.cfg.dim}), Tensor({m.cfg.dim})};
  std::set<std::string> used;
  for (auto& nt : named_tensors(m)) {
    used.insert({nt.name, nt.name + ".scale", nt.name + ".zero"});
    const SafeTensor* t = st.find(nt.name);
    bool bias = nt.name.size() > 5 && nt.name.compare(nt.name.size() - 5, 5, ".bias") == 0;
    if (!t) {
      if (!bias) bad_input("{}: model.safetensors has no '{}'", dir, nt.name);
      *nt.t = Tensor();
      continue;
    }
    auto g = plan.ggml.find(nt.name);
    if (g != plan.ggml.end()) {
      const int64_t rows = nt.t->numel() / nt.t->shape.back(), bytes = ggml_bytes(g->second.type, rows, nt.t->shape.back());
      if (t->dtype != "U8" || bytes < 0 || t->shape != std::vector<int64_t>{rows, bytes / rows})
        bad_input("{}: '{}' is not {} rows of {} for shape {}", dir, nt.name, rows, ggml_type_info(g->second.type)->name,
                  shape_str(nt.t->shape));
      g->second.data.assign(t->bytes.begin(), t->bytes.end());
      *nt.t = decode_ggml(g->second, nt.t->shape);
      continue;
    }
    auto it = plan.weights.find(nt.name);
    if (it == plan.weights.end() || !it->second.enabled()) {
      if (t->shape != nt.t->shape)
        bad_input("{}: '{}' has shape {}, expected {}", dir, nt.name, shape_str(t->shape), shape_str(nt.t->shape));
      if (dtype_size(t->dtype) && t->dtype.find('F') == std::string::npos)
        bad_input("{}: '{}' holds {} codes, but plan.json has no weight quantizer for it", dir, nt.name, t->dtype);
      *nt.t = lazy && runs_stored(nt.name) ? st.owner(t).stored(*t) : st.owner(t).read_f32(*t);
      continue;
    }
    QuantSpec& q = it->second;
    const int64_t rows = nt.t->rows(), cols = nt.t->cols(), row_bytes = code_row_bytes(q, cols);
    const std::vector<int64_t> want = code_shape(q, nt.t->shape, rows, cols);
    if (t->shape != want)
      bad_input("{}: codes of '{}' have shape {}, expected {}", dir, nt.name, shape_str(t->shape), shape_str(want));
    const SafeTensor* sc = st.find(nt.name + ".scale");
    const SafeTensor* zp = st.find(nt.name + ".zero");
    int64_t np = q.n_params((int)rows, (int)cols);
    if (!sc || sc->numel() != np || (q.scheme == Scheme::asym && (!zp || zp->numel() != np)))
      bad_input("{}: quantizer parameters of '{}' are missing or the wrong size", dir, nt.name);
    if (t->dtype != code_dtype(q)) bad_input("{}: codes of '{}' have dtype {}", dir, nt.name, t->dtype);
    q.scale = st.owner(sc).read_f32(*sc).data;
    if (zp) q.zero = st.owner(zp).read_f32(*zp).data;
    for (float v : q.scale)
      if (!(v > 0) || !std::isfinite(v))
        bad_input("{}: '{}.scale' holds {}; steps must be positive and finite", dir, nt.name, v);
    for (float v : q.zero)
      if (!std::isfinite(v)) bad_input("{}: '{}.zero' holds {}; zero points must be finite", dir, nt.name, v);
    const bool is_log = q.scheme == Scheme::log2 || q.scheme == Scheme::logsqrt2;
    std::vector<int32_t> codes((size_t)cols);
    for (int64_t r = 0; r < rows && !is_log; r++) {
      unpack_code_row(t->bytes.data() + r * row_bytes, cols, q, codes.data());
      for (int32_t c : codes)
        if (c > q.qmax() || c < q.qmin())
          bad_input("{}: code {} of '{}' is outside the {}-bit range", dir, c, nt.name, q.bits);
    }
    *nt.t = stored_codes(*t, nt.t->shape, q, st.owner(t).file);
    if (lazy && runs_stored(nt.name)) {  // checked; the codes stay in the file and decode row by row when used
      nt.t->stored->evict();
      continue;
    }
    nt.t->load_values();
    nt.t->stored.reset();
  }
  for (auto& [name, t] : plan.ggml)
    if (t.data.empty()) bad_input("{}: plan.json stores '{}' as {}, which the model has no place for", dir, name,
                                  ggml_type_info(t.type)->name);
  for (auto& name : names)  // a tensor the model has no place for would be lost silently
    if (!used.count(name)) bad_input("{}: model.safetensors has '{}', which the config has no place for", dir, name);
  if (cfg.has("tokenizer")) m.tok = tokenizer_from_json(cfg["tokenizer"]);
  if (cfg.has("labels")) m.labels = cfg["labels"].strings();
  try {
    validate(m);
  } catch (const Error& e) {
    throw Error(e.exit_code, dir + ": " + e.what());
  }
  if (plan_out) *plan_out = std::move(plan);
  return m;
}

}  // namespace tq
