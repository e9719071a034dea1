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
};

Model load_model(const std::string& path, const LoadOptions& opt = {});

Model load_gguf_model(const std::string& path);
struct GgufFile;
Model model_from_gguf(const GgufFile& g);
Model load_llama2c_model(const std::string& path, const std::string& tokenizer_path);
Tokenizer load_llama2c_tokenizer(const std::string& path, int vocab_size);
Model load_hf_model(const std::string& dir);
// A .safetensors file, or a directory with exactly one, whose tensor names match a known layout.
Model load_torch_layout(const std::string& path);

}  // namespace tq
