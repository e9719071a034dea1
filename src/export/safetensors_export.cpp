#include "export/safetensors_export.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/progress.h"
#include "io/atomic_file.h"
#include "io/ggml_types.h"
#include "io/hf.h"
#include "io/safetensors.h"
#include "quant/observer.h"

namespace tq {

namespace {

using json = nlohmann::json;

const char* strategy(const QuantSpec& s) {
  switch (s.gran) {
    case Gran::tensor: return "tensor";
    case Gran::row: return "channel";
    case Gran::group: return "group";
    case Gran::col: return nullptr;
  }
  return nullptr;
}

// compressed-tensors' QuantizationArgs of a weight (`what` names it in a refusal).
json weight_args(const QuantSpec& s, const std::string& what, int64_t cols) {
  if (s.scheme != Scheme::sym && s.scheme != Scheme::asym)
    bad_input("safetensors export: {}: {} codes have no compressed-tensors type (int is)", what, to_string(s.scheme));
  for (float z : s.zero)
    if (z != std::rint(z))
      bad_input("safetensors export: {}: a fractional zero point (HQQ) has no compressed-tensors form; use --gguf",
                what);
  const char* st = strategy(s);
  if (!st) bad_input("safetensors export: {}: per-input-channel weight steps have no compressed-tensors strategy", what);
  if (s.gran == Gran::group && cols % s.group)
    bad_input("safetensors export: {}: rows of {} are not whole groups of {}", what, cols, s.group);
  return {{"num_bits", s.bits}, {"type", "int"}, {"symmetric", s.scheme == Scheme::sym}, {"strategy", st},
          {"group_size", s.gran == Gran::group ? json(s.group) : json(nullptr)}, {"dynamic", false}};
}

// The input activations of a linear, or null for float ones.
json input_args(const QuantSpec* s, const std::string& key) {
  if (!s) return nullptr;
  if (!s->pre_inv.empty())
    bad_input("safetensors export: site {} carries a channel pre-transform that compressed-tensors cannot express",
              key);
  if (!s->enabled()) return nullptr;
  if (s->bits != 8) bad_input("safetensors export: site {}: {}-bit activations (vLLM's are 8-bit)", key, s->bits);
  // Symmetric: per token (dynamic) or per tensor; asymmetric only static per tensor (input_zero_point).
  const bool sym = s->scheme == Scheme::sym;
  if (!sym && (s->scheme != Scheme::asym || s->dynamic))
    bad_input("safetensors export: site {}: {} {} activation codes have no vLLM int8 kernel (symmetric, or "
              "asymmetric static per tensor)", key, s->dynamic ? "per-token" : "static", to_string(s->scheme));
  if (s->dynamic && (s->gran == Gran::row || s->gran == Gran::tensor))
    return {{"num_bits", 8}, {"type", "int"}, {"symmetric", true}, {"dynamic", true},
            {"strategy", s->gran == Gran::row ? "token" : "tensor"}, {"group_size", nullptr}};
  if (!s->dynamic && s->gran == Gran::tensor) {
    for (float z : s->zero)
      if (z != std::rint(z)) bad_input("safetensors export: site {}: a fractional zero point", key);
    return {{"num_bits", 8}, {"type", "int"}, {"symmetric", sym}, {"dynamic", false}, {"strategy", "tensor"},
            {"group_size", nullptr}};
  }
  bad_input("safetensors export: site {}: {} {} activation steps have no compressed-tensors strategy", key,
            s->dynamic ? "dynamic" : "static", to_string(s->gran));
}

// One tensor to write: its HF name, shape and dtype, and how its bytes are made.
struct Out {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::function<void(uint8_t*)> fill;
};

// b-bit unsigned values packed 32/b to an int32, the low bits first; rows are padded with zeros.
void pack_row(const int32_t* v, int64_t n, int bits, int32_t* out) {
  const int per = 32 / bits;
  for (int64_t w = 0; w < (n + per - 1) / per; w++) {
    uint32_t word = 0;
    for (int k = 0; k < per && w * per + k < n; k++) word |= (uint32_t)v[w * per + k] << (bits * k);
    std::memcpy(out + w, &word, 4);
  }
}

}  // namespace

int64_t hf_source_row(const Config& c, Slot slot, int64_t r) {
  if (c.rope_layout == RopeLayout::halves || (slot != Slot::q && slot != Slot::k)) return r;
  const int64_t hd = c.head_dim, h = r / hd, i = r % hd;
  return h * hd + (i < hd / 2 ? 2 * i : 2 * (i - hd / 2) + 1);
}

SafetensorsExportResult export_safetensors(const Model& m, const QuantPlan& plan, const std::string& dir,
                                           const SafetensorsExportOptions& opt) {
  const Config& c = m.cfg;
  if ((c.arch != "llama" && c.arch != "qwen2") || c.norm != NormKind::rms || c.post_norm || c.act != ActKind::silu ||
      !c.gated || c.pos != PosKind::rope || !c.is_lm())
    bad_input("safetensors export: a {} model; the export writes the LLaMA family (LLaMA, Mistral, Qwen2)", c.arch);
  SafetensorsExportResult res;
  for (auto& [key, s] : plan.sites) {
    auto ref = parse_site_key(key, c.n_layers);
    TQ_ASSERT(ref, "plan site key {}", key);
    const Site site = ref->first;
    bool linear_input = site == Site::head_in;
    for (Site in : linear_input_sites()) linear_input |= in == site;
    if (linear_input || (!s.enabled() && s.pre_inv.empty())) continue;
    if (!opt.float_attention)
      bad_input("safetensors export: site {}: {} {}-bit {} quantization inside attention has no compressed-tensors "
                "field (vLLM quantizes linear inputs); --float-attention leaves it out",
                key, s.dynamic ? "dynamic" : "static", s.bits, to_string(s.scheme));
    res.dropped_sites.push_back(key);
  }
  for (auto& [name, g] : plan.ggml)
    bad_input("safetensors export: {} is stored in ggml type {}; export it with --gguf", name,
              ggml_type_info(g.type)->name);

  std::vector<Out> outs;
  json groups = json::object(), ignore = json::array();
  std::vector<json> schemes;  // config_groups in order of first use, each {targets, weights, input_activations}
  std::set<std::string> formats;
  auto named = named_tensors(const_cast<Model&>(m));
  for (auto& nt : named) {
    const Tensor* t = nt.t;
    auto hf = hf_name(llama_hf_rules(), nt.name, c.n_layers);
    auto wref = parse_weight_name(nt.name, c.n_layers);
    // The linear a block tensor belongs to (weight or bias), when it is one.
    std::optional<Slot> slot;
    if (auto split = split_block_key(nt.name, c.n_layers)) slot = slot_from_name(split->second.substr(0, split->second.find('.')));
    const bool is_bias = nt.name.size() > 5 && nt.name.compare(nt.name.size() - 5, 5, ".bias") == 0;
    const bool native_bias = c.arch == "qwen2" && slot && (*slot == Slot::q || *slot == Slot::k || *slot == Slot::v);
    if (!hf || (is_bias && !native_bias))
      bad_input("safetensors export: tensor {} has no place in Hugging Face's {} architecture (a fold may have "
                "added it; --set symmetrize=false keeps OutlierTune's folds bias-free)",
                nt.name, c.arch);
    const int64_t rows = t->ndim() == 2 ? t->dim(0) : t->numel(), cols = t->ndim() == 2 ? t->dim(1) : 1;
    auto src = [&c, slot = slot.value_or(Slot::o)](int64_t r) { return hf_source_row(c, slot, r); };  // q, k: HF's rotary order

    auto wit = plan.weights.find(nt.name);
    if (wit == plan.weights.end() || !wit->second.enabled()) {
      if (t->ndim() == 2 && wref) ignore.push_back(hf->substr(0, hf->size() - 7));
      if (nt.name == "output.weight") ignore.push_back("lm_head");
      outs.push_back({*hf, "F32", t->shape, [t, rows, cols, src](uint8_t* dst) {
                        Tensor v = *t;
                        v.load_values();
                        for (int64_t r = 0; r < rows; r++)
                          std::memcpy(dst + r * cols * 4, v.ptr() + src(r) * cols, cols * 4);
                        if (t->stored) t->stored->evict();
                      }});
      res.float_tensors++;
      continue;
    }
    const QuantSpec& s = wit->second;
    TQ_CHECK_INPUT(t->ndim() == 2 && (wref || nt.name == "output.weight"),
                   "safetensors export: {} is quantized but is not a linear's weight", nt.name);
    const std::string module = hf->substr(0, hf->size() - 7);  // ".weight"
    const std::string site = wref ? site_key(linear_def(wref->slot).input, wref->layer) : site_key(Site::head_in, -1);
    auto sit = plan.sites.find(site);
    json in = input_args(sit == plan.sites.end() ? nullptr : &sit->second, site);
    json w = weight_args(s, nt.name, cols);
    const bool a8 = !in.is_null();
    if (a8 && (s.bits != 8 || s.scheme != Scheme::sym || s.gran == Gran::group))
      bad_input("safetensors export: {}: vLLM's W8A8 kernels take 8-bit symmetric weights per channel or tensor, "
                "not {} {}-bit {}", nt.name, to_string(s.scheme), s.bits, to_string(s.gran));
    if (!a8 && s.bits != 4 && s.bits != 8)
      bad_input("safetensors export: {}: {}-bit weights (pack-quantized holds 4 or 8 bits for vLLM)", nt.name, s.bits);
    const std::string format = a8 ? "int-quantized" : "pack-quantized";
    formats.insert(format);
    json scheme = {{"weights", w}, {"input_activations", in}, {"output_activations", nullptr}, {"format", format}};
    size_t g = 0;
    while (g < schemes.size() && schemes[g] != scheme) g++;
    if (g == schemes.size()) schemes.push_back(scheme);
    groups[fmt::format("group_{}", g)]["targets"].push_back(module);

    // The plan's codes of the simulated weight (checked to decode back to it), rows in HF order.
    auto codes_of = [t, &s, rows, cols, name = nt.name](std::vector<int32_t>& codes) {
      Tensor v = *t;
      v.load_values();
      codes.resize(v.numel());
      quantize_codes(v.ptr(), (int)rows, (int)cols, s, codes.data());
      std::vector<float> back(v.numel());
      dequantize_codes(codes.data(), (int)rows, (int)cols, s, back.data());
      if (std::memcmp(back.data(), v.ptr(), back.size() * 4) != 0)
        run_failed("safetensors export: {} is not the plan's simulation", name);
      if (t->stored) t->stored->evict();
    };
    const int64_t per_row = s.n_params((int)rows, (int)cols) / (s.gran == Gran::tensor ? 1 : rows);
    const std::vector<int64_t> scale_shape =
        s.gran == Gran::tensor ? std::vector<int64_t>{1} : std::vector<int64_t>{rows, per_row};
    auto params = [&s, rows, per_row, src](const std::vector<float>& p) {
      return [&p, &s, rows, per_row, src](uint8_t* dst) {
        float* o = (float*)dst;
        if (s.gran == Gran::tensor) o[0] = p[0];
        else
          for (int64_t r = 0; r < rows; r++) std::memcpy(o + r * per_row, p.data() + src(r) * per_row, per_row * 4);
      };
    };
    const int offset = s.scheme == Scheme::sym ? 1 << (s.bits - 1) : 0;  // to compressed-tensors' unsigned packing
    if (a8) {
      outs.push_back({module + ".weight", "I8", t->shape, [codes_of, rows, cols, src](uint8_t* dst) {
                        std::vector<int32_t> codes;
                        codes_of(codes);
                        for (int64_t r = 0; r < rows; r++)
                          for (int64_t k = 0; k < cols; k++) dst[r * cols + k] = (uint8_t)(int8_t)codes[src(r) * cols + k];
                      }});
      outs.push_back({module + ".weight_scale", "F32", scale_shape, params(s.scale)});
      if (!sit->second.dynamic)
        outs.push_back({module + ".input_scale", "F32", {1}, [&in_scale = sit->second.scale](uint8_t* dst) {
                          std::memcpy(dst, in_scale.data(), 4);
                        }});
      if (!sit->second.dynamic && sit->second.scheme == Scheme::asym)  // signed: the zero point minus 128
        outs.push_back({module + ".input_zero_point", "I8", {1}, [z = sit->second.zero[0]](uint8_t* dst) {
                          dst[0] = (uint8_t)(int8_t)((int)z - 128);
                        }});
    } else {
      const int per = 32 / s.bits;
      outs.push_back({module + ".weight_packed", "I32", {rows, (cols + per - 1) / per},
                      [codes_of, rows, cols, src, offset, per, bits = s.bits](uint8_t* dst) {
                        std::vector<int32_t> codes, row(cols);
                        codes_of(codes);
                        for (int64_t r = 0; r < rows; r++) {
                          for (int64_t k = 0; k < cols; k++) row[k] = codes[src(r) * cols + k] + offset;
                          pack_row(row.data(), cols, bits, (int32_t*)dst + r * ((cols + per - 1) / per));
                        }
                      }});
      outs.push_back({module + ".weight_scale", "F32", scale_shape, params(s.scale)});
      outs.push_back({module + ".weight_shape", "I64", {2}, [rows, cols](uint8_t* dst) {
                        const int64_t shape[2] = {rows, cols};
                        std::memcpy(dst, shape, 16);
                      }});
      if (s.scheme == Scheme::asym) {  // zero points packed along the output rows
        const int64_t zr = s.gran == Gran::tensor ? 1 : rows, zc = s.gran == Gran::tensor ? 1 : per_row;
        outs.push_back({module + ".weight_zero_point", "I32", {(zr + per - 1) / per, zc},
                        [&s, zr, zc, per, src](uint8_t* dst) {
                          std::vector<int32_t> col(zr), packed((zr + per - 1) / per);
                          for (int64_t j = 0; j < zc; j++) {
                            for (int64_t r = 0; r < zr; r++) col[r] = (int32_t)s.zero[(zr > 1 ? src(r) : 0) * zc + j];
                            pack_row(col.data(), zr, s.bits, packed.data());
                            for (size_t p = 0; p < packed.size(); p++) std::memcpy(dst + (p * zc + j) * 4, &packed[p], 4);
                          }
                        }});
      }
    }
    res.quantized++;
  }
  TQ_CHECK_INPUT(!schemes.empty(), "safetensors export: the plan quantizes no linear (nothing to write in "
                                   "compressed-tensors; the model is float)");
  const bool mixed = formats.size() > 1;
  for (size_t g = 0; g < schemes.size(); g++) {
    json& grp = groups[fmt::format("group_{}", g)];
    for (auto& [k, v] : schemes[g].items())
      if (k != "format" || mixed) grp[k] = v;
  }
  res.quantization_config = {{"quant_method", "compressed-tensors"},
                             {"format", mixed ? "mixed-precision" : *formats.begin()},
                             {"quantization_status", "compressed"},
                             {"config_groups", groups},
                             {"ignore", ignore},
                             {"kv_cache_scheme", nullptr},
                             {"global_compression_ratio", nullptr}};

  AtomicDir out(dir);
  json config = hf_llama_config(m, "float32");
  config["quantization_config"] = res.quantization_config;
  write_file_atomic(out.file("config.json"), config.dump(2) + "\n");
  if (!m.tok.empty()) {
    write_file_atomic(out.file("tokenizer.json"), hf_tokenizer_json(m.tok).dump() + "\n");
    json tc = {{"add_bos_token", m.tok.add_bos}, {"add_eos_token", false}, {"model_max_length", c.max_seq},
               {"tokenizer_class", m.tok.kind == TokKind::spm ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast"}};
    for (auto [key, id] : {std::pair{"bos_token", m.tok.bos}, {"eos_token", m.tok.eos}, {"unk_token", m.tok.unk}})
      if (id >= 0) tc[key] = m.tok.pieces[id];
    write_file_atomic(out.file("tokenizer_config.json"), tc.dump(2) + "\n");
  }
  std::vector<SafeTensorOut> tensors;
  Progress prog("export", (int64_t)outs.size(), "tensor");
  for (Out& o : outs)
    tensors.push_back({o.name, o.dtype, o.shape, {}, [&prog, fill = o.fill](uint8_t* dst) {
                         fill(dst);
                         prog.add();
                       }});
  write_safetensors(out.file("model.safetensors"), tensors, {{"format", "pt"}});
  prog.finish();
  out.commit();
  return res;
}

}  // namespace tq
