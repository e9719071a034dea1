// Recipes, passes, the saved model and the quantize command.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

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

// Numbers in built-in names are range-checked with one-line errors (exit 2), never an
// exception from a number parser.
TEST(Recipe, NumbersInNamesAreRangeChecked) {
  auto error_of = [](const std::string& name) -> std::pair<int, std::string> {
    try {
      parse_recipe(name);
    } catch (const Error& e) {
      return {e.exit_code, e.what()};
    }
    return {0, ""};
  };
  for (std::string bad : {"w99999999999a8-rtn", "w4a99999999999999999999999-rtn", "w4-hqq-g0", "w4-hqq-g2000000",
                          "w5-kurtboost", "w1-budget", "w4a16-g99999999999-rtn", "w8a1-outliertune"}) {
    auto [code, msg] = error_of(bad);
    EXPECT_EQ(code, 2) << bad;
    EXPECT_NE(msg.find("must be"), std::string::npos) << bad << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_NE(error_of("w99999999999a8-rtn").second.find("weight bits (X) must be 2..8"), std::string::npos);
  test::TempDir d;
  Model m = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 1, 0.2f);
  write_gguf_f32(m, d.file("m.gguf"));
  auto r = test::run_cli("quantize " + d.file("m.gguf") + " --recipe w99999999999a8-rtn -o " + d.file("out"));
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("weight bits (X) must be 2..8, not 99999999999"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("stoi"), std::string::npos) << r.err;
}

// The built-ins are one table: `tquant quantize --help` lists every row, every row
// expands (with each number at its smallest and largest value) to a recipe the pass
// table accepts, and a JSON recipe naming a built-in reads to the same steps.
TEST(Recipe, BuiltinsAreOneTableThatHelpLists) {
  auto help = test::run_cli("quantize --help");
  ASSERT_EQ(help.status, 0) << help.err;
  for (auto& b : builtin_recipes()) {
    EXPECT_NE(help.out.find(b.pattern), std::string::npos) << b.pattern;
    EXPECT_NE(help.out.find(b.help), std::string::npos) << b.help;
  }
  for (auto& n : recipe_numbers())
    EXPECT_NE(help.out.find(n.max > n.min ? fmt::format("{}  {}, {}..{}", n.letter, n.what, n.min, n.max)
                                          : fmt::format("{}  {}", n.letter, n.what)),
              std::string::npos);
  for (auto& p : all_passes()) EXPECT_NE(help.out.find(p.name), std::string::npos) << p.name;
  for (auto& b : builtin_recipes())
    for (bool high : {false, true}) {
      std::string name;
      for (const char* c = b.pattern; *c; c++) {
        const RecipeNumber* n = nullptr;
        for (auto& r : recipe_numbers())
          if (r.letter == *c) n = &r;
        if (n && n->letter == 'T') name += high ? "Q6_K" : "Q4_0";
        else name += n ? std::to_string(high ? n->max : n->min) : std::string(1, *c);
      }
      Recipe r = parse_recipe(name);
      EXPECT_EQ(r.name, name);
      EXPECT_FALSE(r.steps.empty()) << name;
      Recipe same = recipe_from_json({{"passes", {{{"recipe", name}}}}}, "x");
      ASSERT_EQ(same.steps.size(), r.steps.size()) << name;
      for (size_t i = 0; i < r.steps.size(); i++) {
        EXPECT_EQ(same.steps[i].first, r.steps[i].first) << name;
        EXPECT_EQ(same.steps[i].second, r.steps[i].second) << name;
      }
    }
  EXPECT_THROW(recipe_from_json({{"passes", {{{"recipe", "w8a8-rtn"}, {"w_bits", 4}}}}}, "x"), Error);
  EXPECT_THROW(recipe_from_json({{"passes", {{{"recipe", "no-such"}}}}}, "x"), Error);
}

// Done-when of issue 13: QuantTune composes with a fold method in one JSON recipe run by
// `tquant quantize`, and the plan records both.
TEST(Recipe, JsonRecipeFineTunesThenQuantizesWithOutlierTune) {
  test::TempDir d;
  Model m = random_model(llama_config(32, 2, 4, 2, 48, 300, 64), 4, 0.2f);
  write_gguf_f32(m, d.file("m.gguf"));
  std::string text = test::write_sample_text(d);
  nlohmann::json recipe = {{"name", "quanttune-then-outliertune"},
                           {"passes",
                            {{{"pass", "quanttune"}, {"steps", 4}, {"batch", 4}, {"ctx", 32}, {"lr", 1e-3},
                              {"guard_every", 2}, {"guard_tolerance", 1.0}, {"lambda", 0.1}},
                             {{"recipe", "w8a8-outliertune"}}}}};
  std::ofstream(d.file("r.json")) << recipe.dump();
  std::string args = "quantize " + d.file("m.gguf") + " --calib '" + text + "?limit=16' --threads 2 -o ";
  auto r = test::run_cli(args + d.file("qt") + " --recipe " + d.file("r.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto plan = nlohmann::json::parse(read_text_file(d.file("qt/plan.json")));
  std::vector<std::string> passes;
  for (auto& p : plan["passes"]) passes.push_back(p["pass"]);
  EXPECT_EQ(passes, (std::vector<std::string>{"quanttune", "symmetrize", "step_fold", "rtn"}));
  EXPECT_EQ(plan["passes"][0]["steps"], 4);
  EXPECT_EQ(plan["passes"][0]["data"], "");  // the --calib data
  const auto& qt = plan["notes"]["quanttune"];
  EXPECT_EQ(qt["steps_done"], 4);
  EXPECT_EQ(qt["pool"]["data"], text + "?limit=16");
  EXPECT_EQ(qt["pool"]["fit"], 14);
  EXPECT_EQ(qt["guard"]["history"].size(), 2u);
  EXPECT_EQ(qt["sites_before"].size(), 2u * 4 + 1);
  EXPECT_TRUE(plan["notes"].contains("step_fold"));
  // The fine-tuning changed the model the folds and quantizers apply to.
  auto plain = test::run_cli(args + d.file("ot") + " --recipe w8a8-outliertune");
  ASSERT_EQ(plain.status, 0) << plain.err;
  Model tuned = load_tquant_dir(d.file("qt")), untuned = load_tquant_dir(d.file("ot"));
  EXPECT_NE(tuned.blocks[0].up.w.data, untuned.blocks[0].up.w.data);

  // After a pass that quantizes, fine-tuning is refused before anything is written.
  std::ofstream(d.file("late.json")) << nlohmann::json{{"passes", {{{"recipe", "w8a8-rtn"}}, {{"pass", "quanttune"}}}}}.dump();
  auto late = test::run_cli(args + d.file("late") + " --recipe " + d.file("late.json"));
  EXPECT_EQ(late.status, 2);
  EXPECT_NE(late.err.find("put it before the passes that quantize"), std::string::npos) << late.err;
  EXPECT_FALSE(is_directory(d.file("late")));
}

}  // namespace tq
