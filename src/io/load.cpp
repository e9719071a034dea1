#include "io/load.h"

#include <filesystem>

#include "core/error.h"
#include "core/mmap.h"
#include "io/gguf.h"
#include "io/tquant_dir.h"

namespace tq {

namespace fs = std::filesystem;

static std::string default_llama2c_tokenizer(const std::string& ckpt) {
  fs::path dir = fs::path(ckpt).parent_path();
  if (dir.empty()) dir = ".";
  if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (n.rfind("tok", 0) == 0 && e.path().extension() == ".bin") return e.path().string();
  }
  bad_input("{}: a llama2.c checkpoint needs --tokenizer (no tokenizer.bin or tok*.bin beside it)", ckpt);
}

Model load_model(const std::string& path, const LoadOptions& opt) {
  if (is_directory(path)) {
    if (is_tquant_dir(path)) return load_tquant_dir(path);
    if (file_exists(path + "/config.json")) return load_hf_model(path, opt.lazy);
    return load_torch_layout(path);
  }
  if (!file_exists(path)) bad_input("{}: no such file or directory", path);
  if (is_gguf(path)) return load_gguf_model(path, opt.lazy);
  if (fs::path(path).extension() == ".safetensors") return load_torch_layout(path);
  if (path.size() > 4 && path.substr(path.size() - 4) == ".bin") {
    std::string tok = opt.tokenizer.empty() ? default_llama2c_tokenizer(path) : opt.tokenizer;
    return load_llama2c_model(path, tok);
  }
  bad_input("{}: unknown model format (expected GGUF, a llama2.c .bin, .safetensors, or a model directory)", path);
}

}  // namespace tq
