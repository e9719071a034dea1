// Per-tensor rules of a recipe: bits rules re-quantize the matching weights after the passes,
// ggml type rules pin a GGUF recipe's types; bad rules are one-line errors with the key path.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "io/ggml_types.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "passes/rules.h"
#include "small_inputs.h"
#include "test_util.h"

namespace tq {

namespace {

CalibData rules_calib() { return test::token_calib(4, 16, 71, 13, 5); }

Recipe recipe_file(const test::TempDir& d, const nlohmann::json& j) {
  std::ofstream(d.file("r.json"), std::ios::trunc) << j.dump();
  return parse_recipe(d.file("r.json"));
}

QuantPlan run(const Recipe& r) {
  Model m = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 9, 0.2f);
  QuantPlan plan;
  CalibData cd = rules_calib();
  PassContext ctx(m, plan, cd);
  run_recipe(r, ctx);
  return plan;
}

using test::expect_refusal;

}  // namespace

TEST(Rules, BitsRulesRequantizeTheMatchingWeightsAfterThePasses) {
  test::TempDir d;
  Recipe r = recipe_file(d, {{"passes", {{{"recipe", "w4a16-g32-rtn"}}}},
                             {"rules", {{{"match", "blk\\.[0-0]\\.ffn_down"}, {"bits", 8}, {"group", 32}},
                                        {{"match", "attn_v"}, {"bits", 6}}}}});
  ASSERT_EQ(r.steps.back().first->name, "rules");
  QuantPlan plan = run(r);
  const QuantSpec& down0 = plan.weights.at("blk.0.ffn_down.weight");
  EXPECT_EQ(down0.bits, 8);
  EXPECT_EQ(down0.gran, Gran::group);
  EXPECT_EQ(down0.group, 32);
  EXPECT_EQ(down0.scheme, Scheme::asym);
  EXPECT_EQ(plan.weights.at("blk.1.ffn_down.weight").bits, 4);  // not matched: the pass's choice
  for (const char* v : {"blk.0.attn_v.weight", "blk.1.attn_v.weight"}) {
    EXPECT_EQ(plan.weights.at(v).bits, 6) << v;
    EXPECT_EQ(plan.weights.at(v).gran, Gran::row) << v;
    EXPECT_EQ(plan.weights.at(v).scheme, Scheme::sym) << v;
  }
  EXPECT_EQ(plan.notes["rules"]["blk.0.ffn_down.weight"], "blk\\.[0-0]\\.ffn_down");
}

TEST(Rules, TypeRulesPinAGgufRecipesTypes) {
  test::TempDir d;
  Recipe r = recipe_file(d, {{"passes", {{{"recipe", "gguf-Q4_0"}}}},
                             {"rules", {{{"match", "ffn_up"}, {"type", "q8_0"}}}}});
  override_param(r, "awq", false);
  QuantPlan plan = run(r);
  for (int l = 0; l < 2; l++) {
    EXPECT_EQ(plan.ggml.at(weight_name(l, Slot::up)).type, (uint32_t)ggml_q8_0);
    EXPECT_EQ(plan.ggml.at(weight_name(l, Slot::gate)).type, (uint32_t)ggml_q4_0);
  }
}

TEST(Rules, BadRulesAreRefusedWithTheirKeyPath) {
  test::TempDir d;
  auto with = [&](const nlohmann::json& passes, const nlohmann::json& rules) {
    return [&d, passes, rules] { recipe_file(d, {{"passes", passes}, {"rules", rules}}); };
  };
  const nlohmann::json rtn = {{{"recipe", "w4a16-g32-rtn"}}}, gguf = {{{"recipe", "gguf-Q4_0"}}};
  expect_refusal(with(rtn, {{{"match", "blk\\.[0-"}, {"bits", 8}}}), "rules[0].match");
  expect_refusal(with(rtn, {{{"match", "x"}, {"bits", 9}}}), "rules[0].bits");
  expect_refusal(with(rtn, {{{"match", "x"}, {"bits", 4}, {"colour", 1}}}), "colour");
  expect_refusal(with(rtn, {{{"match", "x"}, {"type", "q6_K"}}}), "needs a GGUF recipe");
  expect_refusal(with(gguf, {{{"match", "x"}, {"bits", 8}}}), "not bits");
  expect_refusal(with(gguf, {{{"match", "x"}, {"type", "q9_K"}}}), "rules[0].type");
  // Found by fuzz_recipe: libstdc++'s regex compiler overflows a long on a huge back-reference.
  expect_refusal(with(rtn, {{{"match", "blk\\99999999999999999999"}, {"bits", 8}}}), "back-reference");
  expect_refusal(with(rtn, {{{"match", "a{2,99999999999}"}, {"bits", 8}}}), "repetition count");
  expect_refusal(with(rtn, {{{"match", "a{1001}"}, {"bits", 8}}}), "repetition count");
  EXPECT_NO_THROW(parse_tensor_rules(JsonAt(nlohmann::json::array({{{"match", "blk\\.1{2,3}\\.(a)\\1"}, {"bits", 8}}}), "rules")));
}

}  // namespace tq
