// tquant export MODEL --gguf FILE: a quantized model (a tquant output
// directory) or any LLaMA model to llama.cpp's GGUF, every tensor in a ggml
// type chosen from the plan (tensors a GGUF recipe already encoded are written
// as they are), with a line per tensor on how far its GGUF values are from the
// plan's simulation.
// tquant export MODEL --safetensors DIR: a W8A8 or weight-only plan to a Hugging
// Face directory in the compressed-tensors format (vLLM).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/common.h"
#include "core/error.h"
#include "export/gguf_export.h"
#include "export/safetensors_export.h"

namespace tq::cli {

void register_export(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "write a (quantized) model as GGUF for llama.cpp, or as compressed-tensors "
                                           "safetensors for vLLM");
  static std::string path, gguf, st_dir, json_out;
  static GgufExportOptions opt;
  static SafetensorsExportOptions st_opt;
  static Common common{0, "", true};  // lazy: one tensor in f32 at a time
  cmd->add_option("model", path, "a tquant output directory, or any LLaMA model")->required();
  auto* gguf_opt = cmd->add_option("--gguf", gguf, "GGUF file to write (atomically)");
  cmd->add_option("--safetensors", st_dir,
                  "Hugging Face directory to write (atomically): config.json with a compressed-tensors "
                  "quantization_config, model.safetensors, tokenizer files")
      ->excludes(gguf_opt);
  cmd->add_flag("--float-attention", st_opt.float_attention,
                "--safetensors: leave the plan's quantizers inside attention (q, k, v, probs) out");
  cmd->add_option("--types", opt.types,
                  "exact: types that hold the plan's own codes (<= 4-bit affine -> Q4_1, symmetric -> Q4_0/Q5_0/"
                  "Q8_0, 8-bit affine re-quantized to Q8_0); kquant: the K-quant of the plan's bits where rows are "
                  "whole 256-blocks (re-quantized, smaller)")
      ->check(CLI::IsMember({"exact", "kquant"}));
  cmd->add_option("--fallback", opt.fallback,
                  "type of quantized weights whose rows are not whole 32-blocks: f16 (as llama.cpp) or f32 (exact)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16"}));
  cmd->add_option("--float-type", opt.float_type, "type of 2-D weights the plan leaves float")
      ->check(CLI::IsMember({"f32", "f16"}));
  cmd->add_option("--json", json_out, "write the per-tensor report as JSON to FILE ('-' for stdout)");
  add_common(cmd, common);
  cmd->callback([] {
    if (gguf.empty() == st_dir.empty()) bad_input("export: give one of --gguf FILE and --safetensors DIR");
    Loaded l = load_with_plan(path, common);
    static const QuantPlan none;
    const QuantPlan& plan = l.plan ? *l.plan : none;  // not a copy: a large model's scales are hundreds of MB
    if (!st_dir.empty()) {
      auto r = export_safetensors(l.model, plan, st_dir, st_opt);
      if (!r.dropped_sites.empty())
        fmt::print(stderr, "export: {} quantizers inside attention left in float (--float-attention): {}\n",
                   r.dropped_sites.size(), fmt::join(r.dropped_sites, ", "));
      if (!json_out.empty())
        write_json(json_out, {{"safetensors", st_dir}, {"quantization_config", r.quantization_config}});
      if (json_out == "-") return;
      fmt::print("{} -> {}: {} linears as compressed-tensors codes ({}), {} float tensors\n", path, st_dir,
                 r.quantized, r.quantization_config["format"].get<std::string>(), r.float_tensors);
      return;
    }
    auto report = export_gguf(l.model, plan, gguf, opt);
    int64_t exact = 0;
    for (auto& r : report) exact += r.exact();
    if (!plan.sites.empty())
      fmt::print(stderr, "export: the plan's {} activation quantizers are not part of GGUF (llama.cpp quantizes "
                         "activations its own way)\n", plan.sites.size());
    if (!json_out.empty()) write_json(json_out, {{"gguf", gguf}, {"tensors", to_json(report)}});
    if (json_out == "-") return;
    fmt::print("{} -> {}: {} tensors, {} equal to the plan's simulation\n", path, gguf, report.size(), exact);
    for (auto& r : report)
      if (!r.exact())
        fmt::print("  {:32} {:22} {:5} max |diff| {:.3g}, rel rms {:.3g} ({})\n", r.name, r.plan, r.type,
                   r.max_abs_diff, r.rel_rms, r.how);
  });
}

}  // namespace tq::cli
