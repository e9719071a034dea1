// Recipes, passes, the saved model and the quantize command.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/evaluate.h"
#include "export/gguf_writer.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "test_util.h"

namespace tq {


TEST(Recipe, BuiltinNamesExpand) {
  Recipe r = parse_recipe("w6a8-rtn");
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_EQ(r.steps[0].second["w_bits"], 6);
  EXPECT_EQ(r.steps[0].second["a_bits"], 8);
  EXPECT_EQ(r.steps[0].second["calibrator"], "minmax");
  Recipe g = parse_recipe("w4a16-g64-rtn");
  EXPECT_EQ(g.steps[0].second["a_bits"], 0);
  EXPECT_EQ(g.steps[0].second["w_gran"], "group");
  EXPECT_EQ(g.steps[0].second["group"], 64);
  override_param(r, "calibrator", "kl");
  EXPECT_EQ(r.steps[0].second["calibrator"], "kl");
}

TEST(Recipe, BadRecipesNameTheProblemAndTheChoices) {
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code, 2);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([] { parse_recipe("w9a8-rtn"); }).find("2..8"), std::string::npos);
  EXPECT_NE(message([] { parse_recipe("nonsense"); }).find("built-in"), std::string::npos);
  auto unknown_pass = message([] { recipe_from_json({{"passes", {{{"pass", "magic"}}}}}, "x"); });
  EXPECT_NE(unknown_pass.find("unknown pass 'magic'"), std::string::npos);
  EXPECT_NE(unknown_pass.find("rtn"), std::string::npos);  // lists the valid ones
  auto bad_param = message([] { recipe_from_json({{"passes", {{{"pass", "rtn"}, {"wbits", 4}}}}}, "x"); });
  EXPECT_NE(bad_param.find("no parameter 'wbits'"), std::string::npos);
  EXPECT_NE(bad_param.find("w_bits"), std::string::npos);
  auto range = message([] { recipe_from_json({{"passes", {{{"pass", "rtn"}, {"a_bits", 12}}}}}, "x"); });
  EXPECT_NE(range.find("out of range"), std::string::npos);
  auto choice = message([] { recipe_from_json({{"passes", {{{"pass", "rtn"}, {"calibrator", "avg"}}}}}, "x"); });
  EXPECT_NE(choice.find("minmax, percentile, mse, kl"), std::string::npos);
  auto type = message([] { recipe_from_json({{"passes", {{{"pass", "rtn"}, {"w_bits", "eight"}}}}}, "x"); });
  EXPECT_NE(type.find("must be an integer"), std::string::npos);
}

TEST(Recipe, CliRejectsBadRecipesAndWritesNothing) {
  test::TempDir d;
  Model m = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 1, 0.2f);
  write_gguf_f32(m, d.file("m.gguf"));
  std::string text = test::write_sample_text(d);
  for (std::string recipe : {std::string("w3a17-rtn"), std::string("bogus"), d.file("t.txt")}) {
    auto r = test::run_cli("quantize " + d.file("m.gguf") + " --recipe " + recipe + " --calib " + text + " -o " +
                           d.file("out"));
    EXPECT_EQ(r.status, 2) << recipe << r.err;
    EXPECT_FALSE(is_directory(d.file("out")));
  }
  auto r = test::run_cli("quantize " + d.file("m.gguf") + " --recipe w8a8-rtn --set sites=qkv_in,nowhere --calib " +
                         text + " -o " + d.file("out"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown site 'nowhere'"), std::string::npos) << r.err;
  EXPECT_FALSE(is_directory(d.file("out")));
}

// Done-when 3 of the quantization core: the saved model evaluates to the same bits as the simulation.
TEST(Recipe, SavedModelEvaluatesExactlyLikeTheSimulation) {
  test::TempDir d;
  Model pre = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 2, 0.2f);
  Config pc = pre.cfg;
  pc.norm = NormKind::layer;
  pc.post_norm = true;  // the folds live in the plan's quantize-op transforms
  Model post = random_model(pc, 2, 0.2f, true);
  std::string text = test::write_sample_text(d);
  DataSpec calib = parse_data_spec(text + "?limit=20"), eval = parse_data_spec(text + "?from=0.5");
  for (std::string name : {"w8a8-rtn", "w4a8-rtn", "w4a16-g16-rtn", "w6a6-outliertune", "w8a8-smoothquant",
                           "post-norm w6a6-outliertune", "post-norm w6a6-smoothquant"}) {
    bool is_post = name.rfind("post-norm ", 0) == 0;
    const Model& fp = is_post ? post : pre;
    Recipe r = parse_recipe(is_post ? name.substr(10) : name);
    if (name == "w4a8-rtn") override_param(r, "a_gran", "token");
    Model m = fp;
    QuantPlan plan;
    CalibData cd = load_calib(calib, fp);
    PassContext ctx(m, plan, cd);
    run_recipe(r, ctx);
    Model q = simulate_weights(m, plan);
    SimHook sim(plan, q.cfg.n_layers);
    EvalResult a = evaluate(q, eval, sim, &fp);
    save_tquant_dir(d.file("out"), m, plan);
    QuantPlan loaded_plan;
    Model loaded = load_tquant_dir(d.file("out"), &loaded_plan);
    SimHook sim2(loaded_plan, loaded.cfg.n_layers);
    EvalResult b = evaluate(loaded, eval, sim2, &fp);
    EXPECT_EQ(a.json.dump(), b.json.dump()) << name;
    EXPECT_GT(a.json["kld_mean"].get<double>(), 0) << name;  // quantization did something
    EXPECT_EQ(loaded_plan.to_json(true), plan.to_json(true)) << name;
  }
}

TEST(Recipe, QuantizeCommandWritesModelAndReport) {
  test::TempDir d;
  Model m = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 3, 0.2f);
  write_gguf_f32(m, d.file("m.gguf"));
  std::string text = test::write_sample_text(d);
  auto r = test::run_cli("quantize " + d.file("m.gguf") + " --recipe w8a8-rtn --calibrator percentile --calib '" +
                         text + "?limit=16' --eval '" + text + "?from=0.5' -o " + d.file("q") + " --report " +
                         d.file("rep") + " --json " + d.file("f.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* f : {"q/plan.json", "q/config.json", "q/model.safetensors", "rep/report.json", "rep/report.md",
                        "rep/report.html"})
    EXPECT_TRUE(file_exists(d.file(f))) << f;
  auto figures = nlohmann::json::parse(read_text_file(d.file("f.json")));
  auto again = test::run_cli("eval " + d.file("q") + " --simulate --data '" + text + "?from=0.5' --json -");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["ppl"], figures["eval"]["ppl"]);
  auto report = nlohmann::json::parse(read_text_file(d.file("rep/report.json")));
  EXPECT_EQ(report["sites"].size(), 2u * 4 + 1);
  EXPECT_EQ(report["weights"].size(), 2u * 7 + 1);
  EXPECT_EQ(report["passes"][0]["calibrator"], "percentile");
}

}  // namespace tq
