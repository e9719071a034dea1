// libFuzzer target: plan.json. A plan that parses and fits a tiny model runs
// one forward with its simulation hook and one on the integer runtime. Any
// input ends in figures or a tq::Error.
#include "core/error.h"
#include "core/json.h"
#include "nn/random_model.h"
#include "quant/plan.h"
#include "runtime/runtime.h"

static const tq::Model& tiny() {
  static const tq::Model m = tq::random_model(tq::llama_config(16, 1, 2, 1, 32, 32, 8), 7);
  return m;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    nlohmann::json doc = tq::parse_json({(const char*)data, size}, "plan.json");
    tq::QuantPlan plan = tq::QuantPlan::from_json(tq::JsonAt(doc, "plan.json"));
    tq::check_plan_sites(plan, tiny().cfg, "plan.json");
    const int32_t tokens[] = {1, 7, 10, 3, 30, 5};
    tq::Input in;
    in.T = 6;
    in.tokens = tokens;
    tq::Workspace ws;
    tq::SimHook sim(plan, tiny().cfg.n_layers);
    tq::Model q = tq::simulate_weights(tiny(), plan);
    tq::forward(q, in, ws, sim);
    tq::Model r = tiny();
    tq::Runtime rt = tq::attach_runtime(r, plan);
    tq::forward(r, in, ws, rt.hooks());
  } catch (const tq::Error&) {
  }
  return 0;
}
