#include "export/generate.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "io/ggml_types.h"
#include "io/hf.h"
#include "io/safetensors.h"
#include "nn/random_model.h"

namespace tq {

namespace {

constexpr int64_t kRunRows = 64;

// The values of tensor `index` (rows × cols) into dst as `type`.
void fill_random(uint8_t* dst, const GgmlTypeInfo* type, int64_t index, int64_t rows, int64_t cols, bool gain,
                 uint64_t seed) {
  const double std = gain ? 0.1 : 1.0 / std::sqrt((double)cols);
  const int64_t runs = (rows + kRunRows - 1) / kRunRows, row_bytes = cols / type->block * type->bytes;
#pragma omp parallel
  {
    std::vector<float> vals;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < runs; r++) {
      const int64_t r0 = r * kRunRows, n = std::min(kRunRows, rows - r0);
      Rng rng(seed * 0x9e3779b97f4a7c15ull ^ (uint64_t)index << 32 ^ (uint64_t)r);
      vals.resize(n * cols);
      for (int64_t i = 0; i < n * cols; i += 2) {  // Box-Muller, both values of each pair
        double u1 = std::max(rng.uniform_f64(), 1e-300), u2 = rng.uniform_f64();
        double rad = std::sqrt(-2.0 * std::log(u1)) * std, ang = 6.283185307179586 * u2;
        vals[i] = (float)(rad * std::cos(ang)) + (gain ? 1.0f : 0.0f);
        if (i + 1 < n * cols) vals[i + 1] = (float)(rad * std::sin(ang)) + (gain ? 1.0f : 0.0f);
      }
      type->from_f32(vals.data(), dst + r0 * row_bytes, n * cols);
    }
  }
}

struct Planned {
  std::string name;
  std::vector<int64_t> shape;
  uint32_t type;
  bool gain;
};

std::vector<Planned> plan_tensors(const GenerateOptions& opt, Model& shapes) {
  std::vector<Planned> out;
  for (auto& nt : named_tensors(shapes)) {
    bool vec = nt.t->ndim() < 2;
    out.push_back({nt.name, nt.t->shape, vec ? (uint32_t)ggml_f32 : opt.type,
                   nt.name.find("norm.weight") != std::string::npos});
  }
  return out;
}

int64_t mib(const Planned& t) { return Tensor::count(t.shape) * ggml_type_info(t.type)->bytes >> 20; }
int64_t total_mib(const std::vector<Planned>& ts) {
  int64_t n = 0;
  for (auto& t : ts) n += mib(t);
  return n;
}

const char* st_dtype(uint32_t type) { return type == ggml_f32 ? "F32" : type == ggml_f16 ? "F16" : "BF16"; }

void write_hf(const std::string& dir, const GenerateOptions& opt, const std::vector<Planned>& ts, const Model& m) {
  AtomicDir out(dir);
  const nlohmann::json config =
      hf_llama_config(m, opt.type == ggml_f32 ? "float32" : opt.type == ggml_f16 ? "float16" : "bfloat16");
  write_file_atomic(out.file("config.json"), config.dump(2) + "\n");
  write_file_atomic(out.file("tokenizer.json"), hf_tokenizer_json(m.tok).dump() + "\n");
  // Shards of at most shard_bytes, in tensor order.
  std::vector<std::vector<SafeTensorOut>> shards(1);
  int64_t in_shard = 0;
  Progress prog("generate", total_mib(ts), "MiB");
  for (size_t i = 0; i < ts.size(); i++) {
    const Planned& t = ts[i];
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    int64_t bytes = Tensor::count(t.shape) * ti->bytes;
    if (in_shard > 0 && in_shard + bytes > opt.shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    in_shard += bytes;
    SafeTensorOut o{*hf_name(llama_hf_rules(), t.name, m.cfg.n_layers), st_dtype(t.type), t.shape, {}, {}};
    o.fill = [=, &prog](uint8_t* dst) {
      fill_random(dst, ti, (int64_t)i, Tensor::count(t.shape) / t.shape.back(), t.shape.back(), t.gain, opt.seed);
      prog.add(mib(t));
    };
    shards.back().push_back(std::move(o));
  }
  if (shards.size() == 1) {
    write_safetensors(out.file("model.safetensors"), shards[0]);
  } else {
    nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
    for (size_t s = 0; s < shards.size(); s++) {
      std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
      for (auto& t : shards[s]) index["weight_map"][t.name] = name;
      write_safetensors(out.file(name), shards[s]);
    }
    write_file_atomic(out.file("model.safetensors.index.json"), index.dump(2) + "\n");
  }
  out.commit();
}

}  // namespace

void write_random_model(const std::string& path, const GenerateOptions& opt) {
  TQ_CHECK_INPUT(opt.type == ggml_f32 || opt.type == ggml_f16 || opt.type == ggml_bf16,
                 "generated models are F32, F16 or BF16");
  TQ_CHECK_INPUT(opt.cfg.arch == "llama" || opt.cfg.arch == "qwen2", "generated models are LLaMA or Qwen2");
  TQ_CHECK_INPUT(opt.cfg.arch != "qwen2" || opt.cfg.sliding_window == 0, "generated Qwen2 models have no window");
  validate_config(opt.cfg, INT64_MAX);
  Model m;  // shapes only: the one list of tensors and their names
  m.cfg = opt.cfg;
  const bool qwen2 = opt.cfg.arch == "qwen2";
  allocate(m, qwen2, false, false);
  if (qwen2) {  // biases on q, k and v only
    for (Block& b : m.blocks) b.o.b = b.gate.b = b.up.b = b.down.b = Tensor();
    m.head.b = Tensor();
  }
  m.tok = byte_tokenizer(opt.cfg.vocab);
  const auto ts = plan_tensors(opt, m);
  if (opt.format == "hf") return write_hf(path, opt, ts, m);
  TQ_CHECK_INPUT(opt.format == "gguf", "format '{}' (gguf or hf)", opt.format);
  GgufWriter w;
  add_llama_metadata(w, m);
  Progress prog("generate", total_mib(ts), "MiB");
  for (size_t i = 0; i < ts.size(); i++) {
    const Planned t = ts[i];
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    w.add_tensor(t.name, t.shape, t.type, [=, &prog](uint8_t* dst) {
      fill_random(dst, ti, (int64_t)i, Tensor::count(t.shape) / t.shape.back(), t.shape.back(), t.gain, opt.seed);
      prog.add(mib(t));
    });
  }
  w.write(path);
}

}  // namespace tq
