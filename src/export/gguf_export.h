// A quantized model to llama.cpp's GGUF: every tensor in a ggml type chosen
// from the plan (a table of rules), with the llama metadata and tokenizer, and
// for every tensor how far its GGUF values are from the plan's simulation.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/model.h"
#include "quant/plan.h"

namespace tq {

struct GgufExportOptions {
  // "exact": types that hold the plan's own codes where one does (≤ 4-bit affine → Q4_1 with
  // d = Δ, m = −z·Δ; symmetric → Q4_0/Q5_0/Q8_0 with d = Δ), re-quantizing otherwise (8-bit
  // affine → Q8_0); "kquant": the K-quant of the plan's bit width where rows are whole
  // 256-blocks (re-quantized: smaller files, values further from the plan).
  std::string types = "exact";
  std::string fallback = "f32";    // rows that are not whole 32-blocks: f32 (exact) or f16
  std::string float_type = "f32";  // 2-D weights the plan leaves float (embeddings, head): f32 or f16
};

struct GgufTensorReport {
  std::string name, plan, type, how;
  double max_abs_diff = 0, rel_rms = 0;  // GGUF values against the plan's simulation
  bool exact() const { return max_abs_diff == 0; }
};

// m holds the weights as the plan's simulation has them (simulate_weights, or a
// loaded tquant directory). Refuses (bad_input) what llama's architecture cannot
// hold: norm or linear biases, the plan's activation pre-transforms.
std::vector<GgufTensorReport> export_gguf(const Model& m, const QuantPlan& plan, const std::string& path,
                                          const GgufExportOptions& opt = {});
nlohmann::json to_json(const std::vector<GgufTensorReport>& r);

}  // namespace tq
