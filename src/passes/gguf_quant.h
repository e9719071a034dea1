// GGUF files for llama.cpp, every tensor llama.cpp quantizes in a ggml type
// (methods-gptq-awq.md §5.14):
//   type = a base type   llama.cpp's rules: every 2-D weight in the base type, the output
//                        head in Q6_K (Q8_0 where rows are not whole 256-blocks, or with a
//                        Q8_0 base), a K type on rows that are not whole 256-blocks falls back
//                        to the legacy type llama.cpp uses, rows that are not whole blocks F16
//   type = auto          the allocator: a type and a method for every tensor such that the
//                        file is at most max_bytes and the estimated output KL is least
// Methods: rtn (the activation-weighted scale search, or with imatrix off ggml's reference
// encoder: what llama-quantize does) and gptq; AWQ's scales first, when on. The estimate of
// a tensor's cost is second order and block-local: ½ Σ_o φ_o ΔW_o E[xxᵀ] ΔW_oᵀ from the
// input's Hessian and the Fisher's row weights φ (the token embedding: ½ Σ F ΔW²), so the
// allocation needs no probe forwards; the exact KL of the result is an optional check.
// The result is in plan.ggml: the export writes it as it is.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "passes/rules.h"
#include "quant/gptq.h"

namespace tq {

struct GgufQuantOptions {
  std::string type = "auto";   // "auto" or a base ggml type ("Q4_0", "q8_0", ...)
  int64_t max_bytes = 0;       // auto: the file size limit; 0 with max_bpw 0: refused
  double max_bpw = 0;          // auto: or bits per parameter of the whole file
  std::string method = "auto"; // rtn, gptq, or auto (per tensor and type the lower estimate)
  bool imatrix = true;         // rtn: activation-weighted scale search (off: ggml's reference encoders)
  std::string imatrix_file;    // rtn: the search weighs channels by this importance matrix (llama.cpp's
                               // imatrix.gguf or .dat) for the tensors it holds, by the calibration's others
  std::vector<TensorRule> tensor_types;  // {"match", "type"} rules: these tensors in that type (before any choice)
  bool awq = true;             // AWQ's scales at qkv_in, up_in, down_in before quantizing
  GptqOptions gptq;
  int fisher_batches = 32;     // calibration batches with a backward pass for the Fisher (0: all)
  bool check = false;          // also measure the exact output KL on the calibration data
  uint64_t seed = 0;
};

// One tensor's choice.
struct GgufChoice {
  std::string name;
  uint32_t type = 0;
  std::string method;  // "rtn", "gptq", "ref" (ggml's reference encoder), "f16"
  int64_t bytes = 0;   // encoded (unpadded)
  double error = 0;    // estimated contribution to the mean output KL
};

struct GgufQuantResult {
  std::vector<GgufChoice> choices;
  int64_t file_bytes = 0;     // of the GGUF export
  double predicted_kl = 0;    // Σ of the choices' estimates
  double measured_kl = -1;    // check: the exact mean KL on the calibration data (−1: not measured)
  nlohmann::json awq;         // per site: alpha and errors
  std::string awq_type;       // the base type AWQ's search scored with
  double seconds = 0;
};

// Quantizes m in place (weights = the decoded ggml tensors, plus AWQ's folds) and fills
// plan.ggml. bad_input when the budget cannot hold even the smallest choice of every tensor.
GgufQuantResult gguf_quantize(Model& m, QuantPlan& plan, const CalibData& calib, const GgufQuantOptions& opt);

// The choice as llama-quantize arguments: --token-embedding-type, --output-tensor-type and one
// --tensor-type NAME=TYPE per other tensor, then the base type (the most common one).
std::string llama_quantize_args(const std::vector<GgufChoice>& choices);

// The type llama.cpp's rules give a tensor for a base type (see above).
uint32_t llama_rule_type(const std::string& name, int64_t cols, uint32_t base);

}  // namespace tq
