// libFuzzer target: config.json of a Hugging Face directory. The first byte
// picks the fixture family (tests/fixtures/families) whose weights and
// tokenizer sit beside it; the rest is config.json. A model that loads runs
// one forward. Any input ends in a model or a tq::Error.
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/load.h"
#include "nn/forward.h"

namespace fs = std::filesystem;

static const char* const kFamilies[] = {"opt", "gpt2", "bert", "vit"};

// One directory per family: links to every fixture file but config.json.
static std::string family_dir(int f) {
  std::string dir = tq::fuzz::sub_dir(kFamilies[f]);
  if (!fs::exists(dir + "/model.safetensors"))
    for (auto& e : fs::directory_iterator(std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/" + kFamilies[f]))
      if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dir + "/" + e.path().filename().string());
  return dir;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int f = data[0] % 4;
  std::string dir = family_dir(f);
  tq::fuzz::put_file(std::string(kFamilies[f]) + "/config.json", tq::fuzz::as_text(data + 1, size - 1));
  try {
    tq::Model m = tq::load_hf_model(dir);
    tq::Input in;
    in.T = 2;
    std::vector<int32_t> tokens = {0, m.cfg.vocab > 1 ? 1 : 0};
    std::vector<float> patches;
    if (m.cfg.embed == tq::EmbedKind::patches) {
      in.T = m.cfg.max_seq;
      patches.assign((size_t)in.T * m.cfg.patch_dim, 0.5f);
      in.patches = patches.data();
    } else {
      in.tokens = tokens.data();
    }
    tq::Workspace ws;
    tq::forward(m, in, ws);
  } catch (const tq::Error&) {
  }
  return 0;
}
