// libFuzzer target: recipe JSON files ({"name": ..., "passes": [...]}),
// checked against the pass table. Any input ends in a recipe or a tq::Error.
#include "core/error.h"
#include "core/json.h"
#include "passes/pass.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tq::Recipe r = tq::recipe_from_json(tq::parse_json({(const char*)data, size}, "recipe.json"), "recipe.json");
    tq::override_param(r, "calibrator", "mse");
  } catch (const tq::Error&) {
  }
  return 0;
}
