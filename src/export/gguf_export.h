// A quantized model to llama.cpp's GGUF: every tensor in a ggml type chosen
// from the plan (a table of rules), with the llama metadata and tokenizer, and
// for every tensor how far its GGUF values are from the plan's simulation.
#pragma once
#include <nlohmann/json.hpp>
#include <map>
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
  std::string fallback = "f16";    // rows that are not whole 32-blocks: f16 (as llama.cpp) or f32 (exact)
  std::string float_type = "f32";  // 2-D weights the plan leaves float (embeddings, head): f32 or f16
};

struct GgufTensorReport {
  std::string name, plan, type, how;
  double max_abs_diff = 0, rel_rms = 0;  // GGUF values against the plan's simulation
  bool exact() const { return max_abs_diff == 0; }
};

// m holds the weights as the plan's simulation has them (simulate_weights, or a
// loaded tquant directory). Weights the plan stores in a ggml type (plan.ggml) are
// written as they are. Refuses (bad_input) what llama's architecture cannot
// hold: norm or linear biases, the plan's activation pre-transforms.
std::vector<GgufTensorReport> export_gguf(const Model& m, const QuantPlan& plan, const std::string& path,
                                          const GgufExportOptions& opt = {});
nlohmann::json to_json(const std::vector<GgufTensorReport>& r);

// The exact size in bytes of the GGUF file export_gguf writes for m when each tensor named in
// `types` has that ggml type and every other tensor is F32 (what a budget is checked against).
int64_t gguf_export_size(const Model& m, const std::map<std::string, uint32_t>& types);

}  // namespace tq
