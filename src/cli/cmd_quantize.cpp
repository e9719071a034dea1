// tquant quantize MODEL --recipe NAME|FILE --calib SPEC -o OUT [--report DIR]:
// runs the recipe's passes, writes the quantized model, and reports what was lost.
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <set>

#include "cli/common.h"
#include "core/checked.h"
#include "core/error.h"
#include "core/ranks.h"
#include "core/json.h"
#include "core/threads.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "core/sha256.h"
#include "io/tquant_dir.h"
#include "passes/pass.h"
#include "passes/pipeline.h"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sys/stat.h>

namespace tq::cli {

// A --set value: JSON (depth-limited), or a bare word as a string.
static nlohmann::json parse_value(const std::string& key, const std::string& v) {
  if (!nlohmann::json::accept(v, false)) return v;  // accept() checks without building (or recursing into) a value
  return parse_json(v, "--set " + key);
}

static double peak_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

// What a checkpoint must match to be continued: the model file, the calibration tokens,
// the recipe with every parameter, the seed and the threads (same inputs: same bits).
static std::string run_fingerprint(const std::string& path, const CalibData& cd, const Recipe& r, uint64_t seed) {
  struct stat sb{};
  stat(path.c_str(), &sb);
  Sha256 h;
  nlohmann::json steps = nlohmann::json::array();
  for (auto& [p, params] : r.steps) steps.push_back({{"pass", p->name}, {"params", params}});
  h.add(nlohmann::json{{"format", "tquant-checkpoint-1"}, {"model", std::filesystem::absolute(path).string()},
                       {"size", (int64_t)sb.st_size}, {"mtime", (int64_t)sb.st_mtim.tv_sec}, {"recipe", steps},
                       {"seed", seed}, {"threads", num_threads()}}
            .dump());
  for (auto& b : cd.batches) h.add(b.tokens.data(), b.tokens.size() * sizeof(int32_t));
  return h.hex();
}

// Peak memory of a block-sequential run, before it starts: one block in f32, the head
// in f32, the calibration streams twice (kept and in the workspace) and one forward.
static int64_t block_run_estimate(Model& m, const CalibData& cd) {
  int64_t block = 0;
  for (int l = 0; l < m.cfg.n_layers; l++) {
    int64_t n = 0;
    for (auto& nt : block_tensors(m, l)) n += nt.t->numel();
    block = std::max(block, n * 4 * 2);  // values, and the codes while a tensor is encoded
  }
  int64_t head = m.head.w.numel() * 4, streams = 0, fwd = 0;
  for (auto& b : cd.batches) {
    streams += (int64_t)b.B * b.T * m.cfg.dim * 4 * 2;
    fwd = std::max(fwd, forward_bytes(m.cfg, b.B, b.T, false));
  }
  return block + head + streams + fwd;
}

// quantize one block at a time into OUT.partial (kept when killed), resuming where a
// checkpoint of the same run left off.
static void quantize_by_block(Model& m, const Recipe& recipe, const CalibData& cd, QuantPlan plan, uint64_t seed,
                              const std::string& path, const std::string& out) {
  const int L = m.cfg.n_layers;
  const std::string fp = run_fingerprint(path, cd, recipe, seed);
  AtomicDir dir = AtomicDir::resumable(out);
  const std::string ck_path = dir.file("checkpoint.json"), streams_path = dir.file("streams.safetensors");
  auto shard = [&](int l) { return dir.file(l < L ? block_key(l, "safetensors") : "rest.safetensors"); };
  int first = 0;
  std::vector<Tensor> inputs;
  if (std::filesystem::exists(ck_path)) {
    nlohmann::json doc = read_json_file(ck_path);
    JsonAt ck(doc, ck_path);
    if (ck.string("fingerprint", "") != fp)
      bad_input("{} holds a checkpoint of another run (model, calibration data, recipe, seed or threads differ); "
                "remove it, or run the same command again", dir.tmp());
    first = (int)ck["next_block"].integer(1, L);
    plan = QuantPlan::from_json(ck["plan"]);
    if (!cd.empty()) {
      SafetensorsFile s = read_safetensors(streams_path);
      for (size_t b = 0; b < cd.batches.size(); b++) {
        const SafeTensor* t = s.find(fmt::format("batch.{}", b));
        if (!t) bad_input("{}: no stream of calibration batch {}", streams_path, b);
        inputs.push_back(s.read_f32(*t));
      }
    }
    fmt::print(stderr, "quantize: resuming from block {} of {} ({})\n", first, L, dir.tmp());
  } else {
    for (auto& e : std::filesystem::directory_iterator(dir.tmp()))  // what a run killed before its first
      std::filesystem::remove_all(e.path());                          // checkpoint left is not resumable
    inputs = embed_calibration(m, cd);
  }
  fmt::print(stderr, "quantize: block-sequential, {} blocks; estimated peak {:.0f} MiB beside the mapped file\n", L,
             block_run_estimate(m, cd) / 1048576.0);
  const char* stop = std::getenv("TQ_TEST_KILL_AFTER_BLOCK");  // tests: a run killed mid-way, to be resumed
  PassContext ctx{m, plan, cd, seed};
  run_recipe_by_block(recipe, ctx, first, std::move(inputs), [&](int l, const std::vector<Tensor>& next) {
    auto tensors = block_tensors(m, l);
    write_safetensors(shard(l), encode_tensors(tensors, plan));
    for (auto& nt : tensors) {  // written: the codes' parameters live in the shard now
      auto it = plan.weights.find(nt.name);
      if (it != plan.weights.end()) it->second.scale.clear(), it->second.zero.clear();
    }
    if (!next.empty()) {  // after the last block: the head's input, for a run resumed at the head
      std::vector<SafeTensorOut> ts;
      for (size_t b = 0; b < next.size(); b++) ts.push_back(f32_tensor(fmt::format("batch.{}", b), next[b]));
      write_safetensors(streams_path, ts);
    }
    write_file_atomic(ck_path, nlohmann::json{{"fingerprint", fp}, {"next_block", l + 1}, {"plan", plan.to_json(false)}}
                                   .dump() + "\n");
    if (stop && std::atoi(stop) == l) raise(SIGKILL);
  });
  std::vector<NamedTensor> rest;  // embeddings, the final norm and the head: the head step planned them
  std::set<const Tensor*> in_blocks;
  for (int l = 0; l < L; l++)
    for (auto& nt : block_tensors(m, l)) in_blocks.insert(nt.t);
  for (auto& nt : named_tensors(m))
    if (!in_blocks.count(nt.t)) rest.push_back(nt);
  write_safetensors(shard(L), encode_tensors(rest, plan));
  std::vector<std::string> shards;
  for (int l = 0; l < L; l++) shards.push_back(shard(l));
  shards.push_back(shard(L));
  std::filesystem::remove(ck_path);
  std::filesystem::remove(streams_path);
  finish_tquant_dir(dir, shards, m, plan, {{"recipe", recipe.name}, {"source", path}});
  fmt::print(stderr, "quantize: wrote {}; peak memory {:.1f} MiB\n", out, peak_mib());
}

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "quantize a model with a recipe and report what was lost");
  static std::string path, recipe_name, calib, out, report_dir, eval_spec, calibrator, json_out;
  static std::vector<std::string> sets, tensor_types;
  static std::string imatrix;
  static uint64_t seed = 0;
  static double budget = 0, max_bpw = 0;
  static int64_t max_bytes = 0;
  static Common common{0, "", true};  // lazy: a block-sequential run converts one block at a time
  static bool whole = false;
  cmd->add_option("model", path, "model to quantize")->required();
  cmd->add_option("--recipe", recipe_name, "a built-in recipe (listed below, e.g. w8a8-outliertune) or a JSON recipe file")
      ->required();
  cmd->footer(recipe_help());
  cmd->add_option("--calib", calib, "calibration data: FILE[?from=0.9&limit=128], mnist:DIR, sst2:FILE");
  cmd->add_option("--calibrator", calibrator, "activation calibrator for every pass that takes one")
      ->check(CLI::IsMember({"minmax", "percentile", "mse", "kl", "pmse"}));
  cmd->add_option("--budget", budget,
                  "size budget in bits per weight of the block linears for the budget allocator (wB-budget); "
                  "bytes: --set budget_bytes=N")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-bytes", max_bytes, "auto-gguf: the GGUF file (tquant export --gguf) is at most N bytes")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-bpw", max_bpw, "auto-gguf: or at most B bits per parameter of the whole file")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--set", sets, "override a pass parameter: KEY=VALUE (repeatable)");
  cmd->add_option("--tensor-type", tensor_types,
                  "per-tensor rule REGEX=TYPE (a ggml type such as q8_0: GGUF recipes) or REGEX=BITS (other "
                  "recipes), as llama-quantize's; repeatable, ahead of the recipe's own rules");
  cmd->add_option("--imatrix", imatrix,
                  "llama.cpp importance matrix (imatrix.gguf or .dat) that weighs the GGUF recipes' scale search "
                  "(--set imatrix_file=FILE; GPTQ candidates use the calibration's Hessian)");
  cmd->add_option("-o,--output", out, "output directory (written atomically)")->required();
  cmd->add_option("--eval", eval_spec, "data to evaluate fp32 and quantized on (for the report)");
  cmd->add_option("--report", report_dir, "write report.json, report.md and report.html here");
  cmd->add_option("--json", json_out, "write the headline figures as JSON to FILE ('-' for stdout)");
  cmd->add_option("--seed", seed, "seed for sampling in passes");
  cmd->add_flag("--whole", whole,
                "hold the whole model in f32 (the default only where the recipe, --eval or --report need it)");
  add_common(cmd, common);
  cmd->callback([] {
    // Everything that can be checked is checked before any work or any output.
    Recipe recipe = parse_recipe(recipe_name);
    if (!calibrator.empty()) override_param(recipe, "calibrator", calibrator);
    if (budget > 0) override_param(recipe, "budget", budget);
    if (max_bytes > 0) override_param(recipe, "max_bytes", (double)max_bytes);
    if (max_bpw > 0) override_param(recipe, "max_bpw", max_bpw);
    for (auto& kv : sets) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) bad_input("--set needs KEY=VALUE, got '{}'", kv);
      override_param(recipe, kv.substr(0, eq), parse_value(kv.substr(0, eq), kv.substr(eq + 1)));
    }
    if (!imatrix.empty()) override_param(recipe, "imatrix_file", imatrix);
    if (!tensor_types.empty()) {
      nlohmann::json rules = nlohmann::json::array();
      for (auto& kv : tensor_types) {
        auto eq = kv.rfind('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size())
          bad_input("--tensor-type needs REGEX=TYPE or REGEX=BITS, got '{}'", kv);
        const std::string what = kv.substr(eq + 1);
        const bool bits = what.find_first_not_of("0123456789") == std::string::npos;
        rules.push_back({{"match", kv.substr(0, eq)}});
        if (bits) rules.back()["bits"] = parse_int(what, 1, 64, "--tensor-type bits");
        else rules.back()["type"] = what;
      }
      add_rules(recipe, JsonAt(rules, "--tensor-type"), true);
    }
    std::optional<DataSpec> eval_data;
    if (!eval_spec.empty()) eval_data = parse_data_spec(eval_spec);
    Loaded src = load_with_plan(path, common);
    check_finite_weights(src.model, path);
    Model fp = std::move(src.model);
    CalibData cd;
    if (!calib.empty()) cd = load_calib(calib, fp);
    // Provenance: which data made the plan (null: none), which data scored it, and whether they overlap.
    nlohmann::json calib_note = cd.provenance, eval_note = nullptr, warnings = nlohmann::json::array();
    if (eval_data) eval_note = data_provenance(*eval_data, eval_spec);
    if (eval_data && !calib.empty()) {
      std::string overlap = calib_eval_overlap(parse_data_spec(calib), cd.provenance, *eval_data, eval_note, fp);
      if (!overlap.empty()) {
        fmt::print(stderr, "quantize: warning: {}\n", overlap);
        calib_note["overlaps_eval"] = overlap;
        warnings.push_back(overlap);
      }
    }
    std::string reason = whole_model_reason(recipe, fp);
    if (reason.empty() && (whole || eval_data || !report_dir.empty() || !json_out.empty()))
      reason = whole ? "--whole" : "--eval, --report and --json evaluate the whole model";
    if (reason.empty()) {
      QuantPlan plan;
      if (src.plan && src.plan->weights.empty() && src.plan->sites.empty()) plan.passes = src.plan->passes;
      plan.notes["calibration"] = calib_note;
      fmt::print(stderr, "quantize: recipe {} on {}\n", recipe.name, path);
      quantize_by_block(fp, recipe, cd, std::move(plan), seed, path, out);
      return;
    }
    for (auto& nt : named_tensors(fp)) {  // the whole model in f32
      nt.t->load_values();
      nt.t->stored.reset();
    }

    Model m = fp;
    QuantPlan plan;
    // A float model written by finetune or quanttune: the record of that run heads the new plan.
    if (src.plan && src.plan->weights.empty() && src.plan->sites.empty()) plan.passes = src.plan->passes;
    plan.notes["calibration"] = calib_note;
    PassContext ctx{m, plan, cd, seed};
    fmt::print(stderr, "quantize: recipe {} on {}\n", recipe.name, path);
    const auto t0 = std::chrono::steady_clock::now();
    run_recipe(recipe, ctx);
    const double quantize_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);  // peak so far: loading, calibration data and the passes, before evaluation
    fmt::print(stderr, "quantize: recipe took {:.2f} s; peak memory {:.1f} MiB\n", quantize_s, ru.ru_maxrss / 1024.0);
    Model q = simulate_weights(m, plan);
    SizeInfo size = plan_size(m, plan);

    nlohmann::json headline = {{"fp32", {{"model_bytes", size.fp32_bytes}, {"bits_per_weight", 32}}},
                               {"quantized", {{"model_bytes", size.model_bytes},
                                              {"bits_per_weight", size.bits_per_weight}}}};
    nlohmann::json figures = {{"recipe", recipe.name}, {"model_bytes", size.model_bytes},
                              {"bits_per_weight", size.bits_per_weight}, {"fp32_bytes", size.fp32_bytes},
                              {"quantize_seconds", quantize_s}, {"peak_rss_bytes_after_quantize", (int64_t)ru.ru_maxrss * 1024},
                              {"calibration", calib_note}, {"evaluation", eval_note}, {"warnings", warnings}};
    if (plan.notes.contains("hqq")) {  // both accountings of HQQ's bits (docs/methods.md §3.2)
      figures["hqq_bits_per_weight"] = plan.notes["hqq"]["bits_per_weight"];
      headline["quantized"]["hqq_bits_per_weight"] = plan.notes["hqq"]["bits_per_weight"];
    }
    int64_t saturated = 0;
    if (eval_data) {
      SimHook sim(plan, q.cfg.n_layers);
      EvalResult e = evaluate(q, *eval_data, sim, &fp);
      saturated = ranks::sum_all(sim.saturated);  // each rank evaluated its share
      headline["metric"] = e.metric;
      headline["fp32"]["value"] = e.ref_value;
      headline["quantized"].update(e.json);
      headline["quantized"]["value"] = e.value;
      figures["eval"] = e.json;
      figures["fp32_" + e.metric] = e.ref_value;
      figures["saturated"] = saturated;
      fmt::print(stderr, "quantize: {} fp32 {:.4f} -> quantized {:.4f}; {} activation values clamped by static ranges\n",
                 e.metric, e.ref_value, e.value, saturated);
    }
    save_tquant_dir(out, m, plan, {{"recipe", recipe.name}, {"source", path}});
    fmt::print(stderr, "quantize: wrote {} ({} bytes as stored by the plan, {:.2f} bits/weight)\n", out,
               size.model_bytes, size.bits_per_weight);
    if (!report_dir.empty()) {
      CalibData probe = cd;
      if (probe.batches.size() > 16) probe.batches.resize(16);
      nlohmann::json sites = site_errors(q, plan, probe);
      Observer obs;
      if (!cd.empty()) run_calibration(fp, probe, obs);
      nlohmann::json r = {{"title", fmt::format("tquant: {} with {}", path, recipe.name)},
                          {"recipe", recipe.name},
                          {"passes", plan.passes},
                          {"headline", headline},
                          {"calibration", calib_note},
                          {"evaluation", eval_note},
                          {"warnings", warnings},
                          {"saturated", saturated},
                          {"weights", weight_errors(m, q, plan)},
                          {"sites", sites},
                          {"channels", channel_ranges(obs.stats)},
                          {"notes", plan.notes}};
      write_report(report_dir, r);
      fmt::print(stderr, "quantize: report in {}/report.html\n", report_dir);
    }
    if (!json_out.empty()) write_json(json_out, figures);
  });
}

}  // namespace tq::cli
