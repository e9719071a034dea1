// quantize --tensor-type REGEX=TYPE|BITS and --imatrix FILE: llama-quantize's flags on tquant's
// recipes. Command-line rules come ahead of the recipe's own; an imatrix written by diagnose
// weighs a GGUF recipe's scale search.
#include <gtest/gtest.h>

#include <fstream>

#include "core/json.h"
#include "core/mmap.h"
#include "export/gguf_writer.h"
#include "nn/random_model.h"
#include "small_inputs.h"
#include "test_util.h"

namespace tq {

namespace {

struct Fixture : test::CliModel {
  Fixture() : CliModel(llama_config(64, 2, 4, 2, 96, 300, 64)) {}
  test::CliResult quantize(const std::string& recipe, const std::string& out, const std::string& extra) const {
    return test::run_cli("quantize " + model + " --recipe " + recipe + " --threads 2 --calib '" + text +
                         "?limit=8' -o " + d.file(out) + " " + extra);
  }
  nlohmann::json plan(const std::string& out) const {
    return nlohmann::json::parse(read_text_file(d.file(out) + "/plan.json"));
  }
};

}  // namespace

TEST(RulesCli, TensorTypesComeAheadOfTheRecipesRules) {
  Fixture f;
  std::ofstream(f.d.file("r.json")) << R"({"passes": [{"recipe": "gguf-Q4_0"}],
    "rules": [{"match": "attn_v", "type": "q5_1"}, {"match": "attn_k", "type": "q5_1"}]})";
  auto r = f.quantize(f.d.file("r.json"), "a",
                      "--set awq=false --tensor-type 'attn_v=q8_0' --tensor-type 'blk\\.0\\.attn_q=q5_0'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json g = f.plan("a")["ggml"];
  for (int l = 0; l < 2; l++) {
    const std::string b = "blk." + std::to_string(l) + ".";
    EXPECT_EQ(g[b + "attn_v.weight"], "Q8_0") << l;  // the command line's rule, not the recipe's
    EXPECT_EQ(g[b + "attn_k.weight"], "Q5_1") << l;  // the recipe's
    EXPECT_EQ(g[b + "attn_q.weight"], l == 0 ? "Q5_0" : "Q4_0") << l;
  }
}

TEST(RulesCli, BitsRulesForOtherRecipes) {
  Fixture f;
  auto r = f.quantize("w4a16-g32-rtn", "b", "--tensor-type 'ffn_down=8'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json w = f.plan("b")["weights"];
  EXPECT_EQ(w["blk.1.ffn_down.weight"]["bits"], 8);
  EXPECT_EQ(w["blk.1.ffn_up.weight"]["bits"], 4);
}

TEST(RulesCli, ImatrixFromDiagnoseDrivesTheGgufSearch) {
  Fixture f;
  const std::string im = f.d.file("im.gguf");
  // From other lines than quantize calibrates on, so that its importance differs from the calibration's.
  auto d = test::run_cli("diagnose " + f.model + " --threads 2 --calib '" + f.text + "?offset=30&limit=8' --imatrix-out " + im);
  ASSERT_EQ(d.status, 0) << d.err;
  // method=rtn: the scale search the importance weighs (GPTQ solves with the calibration's whole Hessian).
  auto with = f.quantize("gguf-Q4_0", "c", "--set awq=false --set method=rtn --imatrix " + im);
  ASSERT_EQ(with.status, 0) << with.err;
  EXPECT_EQ(f.plan("c")["passes"][0]["imatrix_file"], im);
  auto without = f.quantize("gguf-Q4_0", "e", "--set awq=false --set method=rtn");
  ASSERT_EQ(without.status, 0) << without.err;
  EXPECT_TRUE(read_text_file(f.d.file("c") + "/model.safetensors") != read_text_file(f.d.file("e") + "/model.safetensors"));
}

TEST(RulesCli, BadFlagsAreOneLineErrors) {
  Fixture f;
  auto no_eq = f.quantize("gguf-Q4_0", "x", "--tensor-type attn_v");
  EXPECT_EQ(no_eq.status, 2);
  EXPECT_NE(no_eq.err.find("--tensor-type needs REGEX=TYPE or REGEX=BITS, got 'attn_v'"), std::string::npos) << no_eq.err;
  auto bits_on_gguf = f.quantize("gguf-Q4_0", "y", "--tensor-type attn_v=8");
  EXPECT_EQ(bits_on_gguf.status, 2);
  EXPECT_NE(bits_on_gguf.err.find("--tensor-type: a GGUF recipe takes"), std::string::npos) << bits_on_gguf.err;
  auto no_taker = f.quantize("w8a8-rtn", "z", "--imatrix " + f.d.file("none.gguf"));
  EXPECT_EQ(no_taker.status, 2);
  EXPECT_NE(no_taker.err.find("takes 'imatrix_file'"), std::string::npos) << no_taker.err;
  auto missing = f.quantize("gguf-Q4_0", "w", "--set awq=false --imatrix " + f.d.file("none.gguf"));
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("none.gguf"), std::string::npos) << missing.err;
  for (const char* out : {"x", "y", "z", "w"}) EXPECT_FALSE(file_exists(f.d.file(out))) << out;
}

}  // namespace tq
