// Turns any supported model file into a Model. No format-specific type
// survives past the loader.
//   GGUF file                       (LLaMA family; tokenizer embedded)
//   llama2.c checkpoint (.bin)      with --tokenizer tok.bin
//   Hugging Face directory          config.json + safetensors + tokenizer
//   tquant output directory         plan.json + model.safetensors
//   PyTorch state dict              one .safetensors of a known layout (torch_layouts.cpp)
#pragma once
#include <string>

#include "nn/model.h"

namespace tq {

struct LoadOptions {
  std::string tokenizer;  // llama2.c tokenizer file (defaults to tokenizer.bin / tok*.bin beside the checkpoint)
  // Matrices (block linears, embeddings, head) keep their file's type in the mapping
  // (Tensor::stored) instead of becoming f32: the forward runs on them as they are, and
  // a pipeline loads one block's values at a time. Norms and biases are f32 either way.
  // GGUF and safetensors files; other formats load as f32.
  bool lazy = false;
};

Model load_model(const std::string& path, const LoadOptions& opt = {});

Model load_gguf_model(const std::string& path, bool lazy = false);
struct GgufFile;
Model model_from_gguf(const GgufFile& g, bool lazy = false);
Model load_llama2c_model(const std::string& path, const std::string& tokenizer_path);
Tokenizer load_llama2c_tokenizer(const std::string& path, int vocab_size);
Model load_hf_model(const std::string& dir, bool lazy = false);
// A .safetensors file, or a directory with exactly one, whose tensor names match a known layout.
Model load_torch_layout(const std::string& path);

}  // namespace tq
