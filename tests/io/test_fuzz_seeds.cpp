#include <gtest/gtest.h>

#include <cstdlib>

#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "io/load.h"
#include "io/safetensors.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {

// Writes the fuzzers' seed files (to $TQ_FUZZ_SEEDS when set) and checks they load.
TEST(FuzzSeeds, WriteAndLoad) {
  test::TempDir tmp;
  const char* env = std::getenv("TQ_FUZZ_SEEDS");
  std::string dir = env ? env : tmp.path;
  make_dirs(dir);
  Model m = random_model(llama_config(8, 1, 2, 1, 8, 259, 8), 1);
  write_gguf_f32(m, dir + "/tiny.gguf");
  Tensor a({2, 3}, 1.5f);
  write_safetensors(dir + "/tiny.safetensors", {f32_tensor("a", a), f32_tensor("b", Tensor({4}, -2.0f))},
                    {{"format", "pt"}});
  EXPECT_EQ(load_model(dir + "/tiny.gguf").cfg.dim, 8);
  auto st = read_safetensors(dir + "/tiny.safetensors");
  ASSERT_EQ(st.tensors.size(), 2u);
  EXPECT_EQ(st.read_f32(*st.find("a")).data, a.data);
}

}  // namespace tq
