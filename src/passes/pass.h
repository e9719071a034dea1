// Passes are the methods: each takes the model, calibration data and its
// parameters, and changes the model and the plan. A recipe is an ordered
// list of passes, so methods compose. Every pass is a row of one table
// (name, help, parameters with defaults and ranges, function: all_passes()
// in pass.cpp); recipes (recipe.cpp) are checked against it before anything runs.
#pragma once
#include <nlohmann/json.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "nn/model.h"
#include "quant/observer.h"
#include "quant/plan.h"
#include "text/dataset.h"

namespace tq {

// Calibration inputs: batches the passes run through the forward.
struct CalibData {
  std::vector<Batch> batches;
  std::string source = {};  // the --calib spec they were read from, when known (quanttune's default data)
  nlohmann::json provenance = nullptr;  // data_provenance() of that spec, with the batch count
  bool empty() const { return batches.empty(); }
};

// Calibration batches from a data spec (text: one sequence per batch); from its text, also
// recorded as the source, with its provenance.
CalibData load_calib(const DataSpec& spec, const Model& m);
CalibData load_calib(const std::string& spec, const Model& m);

// Which data a spec reads: {"spec", "kind", "path", "slice": {from, to, offset, limit[, protocol,
// ctx]}, "bytes", "sha256"}. The bytes and hash are of the file, or of a directory's regular
// files in name order (each file's name, then its bytes).
nlohmann::json data_provenance(const DataSpec& spec, const std::string& text);

// Where the --calib and --eval slices of one file overlap: empty when the files differ (by
// content: bytes and hash) or the slices are disjoint, else a one-line warning. Slices count
// the same sequences when kind, protocol and (chunks) ctx agree, and the overlap is then
// exact; otherwise both are compared as fractions of the file's sequences, approximately.
std::string calib_eval_overlap(const DataSpec& calib, const nlohmann::json& calib_prov, const DataSpec& eval,
                               const nlohmann::json& eval_prov, const Model& m);

struct PassContext {
  PassContext(Model& m, QuantPlan& p, const CalibData& c, uint64_t s = 0) : model(m), plan(p), calib(c), seed(s) {}
  Model& model;
  QuantPlan& plan;
  const CalibData& calib;
  uint64_t seed = 0;

  // Statistics of every site on the current model over the calibration data,
  // gathered on first use; a pass that changes the model calls model_changed().
  const std::map<std::string, SiteStats>& stats();
  void model_changed() { stats_.reset(); }
  // Runs the calibration data through the float model (with the transforms the plan has
  // put into quantize ops so far) with obs watching: the whole model, or in a block step
  // only that block (or the head) on its recorded inputs.
  void observe(Hooks& obs) const;

  // The part of the model a step works on. A whole run: every layer and the head.
  // A block-sequential run (passes/pipeline.h) sets one layer at a time, then the head
  // alone (layer n_layers), with the residual stream each calibration batch brings
  // to that point. Block-local passes loop over layers() and plan the head when head().
  std::vector<int> layers() const;
  bool head() const { return step_ < 0 || step_ == model.cfg.n_layers; }
  bool whole() const { return step_ < 0; }
  void set_step(int step, const std::vector<Tensor>* inputs) {
    step_ = step;
    inputs_ = inputs;
    model_changed();
  }

 private:
  std::unique_ptr<std::map<std::string, SiteStats>> stats_;
  int step_ = -1;
  const std::vector<Tensor>* inputs_ = nullptr;  // per calibration batch: [B·S, dim]
};

struct ParamDef {
  std::string name;
  nlohmann::json fallback;           // default value; its JSON type is the parameter's type
  std::string help;
  std::vector<std::string> choices;  // for strings: the allowed values (empty: any)
  double min = -1e300, max = 1e300;  // for numbers
};

struct PassDef {
  std::string name, help;
  std::vector<ParamDef> params;
  std::function<void(PassContext&, const nlohmann::json&)> run;  // params complete and checked
  // Whether the pass can run one block at a time (it reads and changes only the
  // step's layers and the head in the head step): what a block-sequential run needs.
  std::function<bool(const nlohmann::json&)> block_local = nullptr;
};

const std::vector<PassDef>& all_passes();

struct Recipe {
  std::string name;
  std::vector<std::pair<const PassDef*, nlohmann::json>> steps;  // params with defaults filled in
};

// A built-in recipe: a name pattern in which an upper-case letter stands for a
// number (recipe_numbers(): which, and its range), what it does, and the
// "passes" list it expands to, which recipe_from_json reads like a user's file.
struct RecipeNumber {
  char letter;
  const char* what;
  int64_t min, max;  // T, a ggml type name, has none (0, 0): it stands for the type's id
};
struct BuiltinRecipe {
  const char* pattern;  // "wXaY-rtn"
  const char* help;
  std::function<nlohmann::json(const std::map<char, int>&)> passes;
};
const std::vector<RecipeNumber>& recipe_numbers();
const std::vector<BuiltinRecipe>& builtin_recipes();
// The built-ins, the letters and the JSON form, for --help.
std::string recipe_help();

// A built-in recipe name (e.g. w8a8-rtn, w4a16-g64-rtn) or a JSON file
// {"name": ..., "passes": [{"pass": "rtn", "w_bits": 8, ...}, {"recipe": "w8a8-outliertune"}, ...]}
// (a "recipe" step is a built-in's passes in place). Throws bad_input naming the
// problem and the valid choices.
Recipe parse_recipe(const std::string& name_or_file);
Recipe recipe_from_json(const nlohmann::json& j, const std::string& name);
// Sets `key` to `value` in every step whose pass has that parameter (e.g. --calibrator).
void override_param(Recipe& r, const std::string& key, const nlohmann::json& value);
// Adds per-tensor rules ([{"match", "bits"|"type", ...}], passes/rules.h): ggml type rules to the
// gguf steps' tensor_types (before the ones there with first), bits rules as a last "rules" step.
// The first type rule matching a tensor applies; a later bits step re-quantizes what it matches.
void add_rules(Recipe& r, const JsonAt& rules, bool first);

// Runs every step in order, recording each in plan.passes.
void run_recipe(const Recipe& r, PassContext& ctx);

// Runs the model over every calibration batch with the given hooks.
void run_calibration(const Model& m, const CalibData& calib, Hooks& hooks);

// The statistics of one site; bad_input when calibration never reached it.
const SiteStats& site_stats(const std::map<std::string, SiteStats>& stats, Site site, int layer);

// Records site statistics of the model as the plan defines it so far: the values
// seen through the transforms earlier folds put into quantize ops (post-norm), in float.
void observe(const Model& m, const QuantPlan& plan, const CalibData& calib, Hooks& obs);
// The transforms (pre_inv, pre_shift) the plan has put into its sites' quantize ops, without
// the quantizers: what keeps the float model's function after a fold (observe's view).
QuantPlan site_transforms(const QuantPlan& plan);

// Mean KL(P_ref ‖ P_model) of the output distributions over the calibration data
// (every LM position, every image): the score of searches that pick a setting.
double calib_kld(const Model& m, Hooks& hooks, const Model& ref, const CalibData& calib);

// The rtn step of the per-token recipes (SmoothQuant, OutlierTune): per-row symmetric
// weights, per-token dynamic symmetric activations at `sites`, head in float.
nlohmann::json per_token_rtn_step(int w_bits, int a_bits, const std::string& sites);

}  // namespace tq
