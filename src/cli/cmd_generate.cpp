// tquant generate -o OUT [--preset NAME] [--dim ...] [--type f16] [--format gguf|hf]:
// a random LLaMA of any shape (--arch qwen2: with q/k/v biases; --window N: a Mistral),
// written one tensor at a time (export/generate.h).
#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "core/threads.h"
#include "export/generate.h"
#include "nn/random_model.h"

namespace tq::cli {

namespace {

struct Shape {
  const char* name;
  int dim, layers, heads, kv_heads, hidden, vocab, ctx;
};
// Real models' shapes (their config.json).
constexpr Shape kPresets[] = {
    {"tiny", 64, 2, 4, 2, 172, 512, 256},
    {"llama3-1b", 2048, 16, 32, 8, 8192, 128256, 4096},  // Llama-3.2-1B
    {"llama-7b", 4096, 32, 32, 32, 11008, 32000, 4096},  // Llama-2-7B
    {"llama-13b", 5120, 40, 40, 40, 13824, 32000, 4096},
    {"llama-70b", 8192, 80, 64, 8, 28672, 32000, 4096},
};

}  // namespace

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "write a random LLaMA of any shape (to measure memory and speed at real sizes)");
  static std::string out, preset = "tiny", type = "f16", format = "gguf", arch = "llama";
  static int dim = 0, layers = 0, heads = 0, kv_heads = 0, hidden = 0, vocab = 0, ctx = 0, window = 0;
  static uint64_t seed = 1;
  static Common common;
  std::string names;
  for (auto& p : kPresets) names += fmt::format("{}{}", names.empty() ? "" : ", ", p.name);
  cmd->add_option("-o,--output", out, "GGUF file, or Hugging Face directory with --format hf")->required();
  cmd->add_option("--preset", preset, "shape to start from: " + names)->capture_default_str();
  cmd->add_option("--dim", dim, "model width (overrides the preset)");
  cmd->add_option("--layers", layers, "blocks");
  cmd->add_option("--heads", heads, "attention heads");
  cmd->add_option("--kv-heads", kv_heads, "key/value heads");
  cmd->add_option("--hidden", hidden, "MLP width");
  cmd->add_option("--vocab", vocab, "vocabulary (at least 259: a byte-level tokenizer)");
  cmd->add_option("--ctx", ctx, "context length");
  cmd->add_option("--type", type, "type of the matrices")->check(CLI::IsMember({"f32", "f16", "bf16"}))->capture_default_str();
  cmd->add_option("--format", format, "gguf (one file) or hf (config.json + safetensors)")
      ->check(CLI::IsMember({"gguf", "hf"}))
      ->capture_default_str();
  cmd->add_option("--arch", arch, "llama, or qwen2 (biases on q, k and v)")
      ->check(CLI::IsMember({"llama", "qwen2"}))
      ->capture_default_str();
  cmd->add_option("--window", window, "sliding window of attention (a Mistral; llama only)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--seed", seed, "the same seed gives the same bits");
  add_common(cmd, common);
  cmd->callback([] {
    set_threads(common.threads);
    const Shape* s = nullptr;
    for (auto& p : kPresets)
      if (preset == p.name) s = &p;
    if (!s) bad_input("unknown preset '{}'", preset);
    auto pick = [](int given, int fallback) { return given > 0 ? given : fallback; };
    GenerateOptions opt;
    opt.cfg = llama_config(pick(dim, s->dim), pick(layers, s->layers), pick(heads, s->heads),
                           pick(kv_heads, s->kv_heads), pick(hidden, s->hidden), pick(vocab, s->vocab), pick(ctx, s->ctx));
    TQ_CHECK_INPUT(opt.cfg.dim % opt.cfg.n_heads == 0, "--dim {} is not a multiple of {} heads", opt.cfg.dim,
                   opt.cfg.n_heads);
    opt.cfg.arch = arch;
    if (arch == "qwen2") opt.cfg.rope_layout = RopeLayout::halves;  // as llama.cpp's qwen2 and HF
    opt.cfg.sliding_window = window;
    opt.type = type == "f32" ? ggml_f32 : type == "f16" ? ggml_f16 : ggml_bf16;
    opt.format = format;
    opt.seed = seed;
    write_random_model(out, opt);
    fmt::print(stderr, "generate: wrote {} ({}, {} layers, dim {}, hidden {}, vocab {}, {})\n", out, arch, opt.cfg.n_layers,
               opt.cfg.dim, opt.cfg.hidden, opt.cfg.vocab, type);
  });
}

}  // namespace tq::cli
