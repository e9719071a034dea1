// The hostile-input corpus (issue 20): malformed files made by our own code
// from tiny models, and a runner that checks what the CLI does with each.
// $TQ_CLI runs the corpus against another build (to count how an older one
// fares); every case runs under a timeout and, outside the sanitizer
// builds, an 8 GiB address-space limit, so that a case asking for terabytes
// fails fast instead of taking the machine.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/model.h"
#include "test_util.h"

namespace tq::test {

// A CLI run that must end with `status` and exactly one line on stderr, the
// "tquant: error: ..." line holding every string of `says` (file names, key paths).
struct HostileCase {
  std::string name, args;
  std::vector<std::string> says;
  int status = 2;
};

struct CaseOutcome {
  int status = 0;
  std::string err;
  bool timed_out = false;
  bool ok = false;
  std::string why;  // what was wrong
};

// Runs the tquant CLI with a time limit (and the memory limit above).
CliResult run_cli_limited(const std::string& args, int seconds = 60);
CaseOutcome run_case(const HostileCase& c);
// Runs every case, EXPECTs each, and prints "hostile: <cls>: k of n cases wrong" (the figure for the note).
void expect_all(const std::string& cls, const std::vector<HostileCase>& cases);

// The tiny LLaMA of the corpus (dim 32, 2 layers, byte vocabulary of 300) as GGUF,
// its metadata and tensors passed through edit first.
using GgufEdit = std::function<void(nlohmann::json& meta, std::vector<std::pair<std::string, Tensor>>& tensors)>;
std::string tiny_gguf(const TempDir& d, const std::string& name, const GgufEdit& edit = nullptr);
// Writes a GGUF v3 file from metadata (numbers typed by their JSON kind: u32/u64, i32/i64,
// f32; NaN allowed) and f32 tensors.
void write_raw_gguf(const std::string& path, const nlohmann::json& meta,
                    const std::vector<std::pair<std::string, Tensor>>& tensors);

// The tiny LLaMA quantized W8A8 (RTN, static per-tensor activations at every linear input)
// as a tquant output directory, with its plan.json and config.json passed through the edits.
using JsonEdit = std::function<void(nlohmann::json&)>;
std::string tiny_tquant_dir(const TempDir& d, const std::string& name, const JsonEdit& edit_plan = nullptr,
                            const JsonEdit& edit_config = nullptr, const std::function<void(Config&)>& edit_model = nullptr);

// A Hugging Face LLaMA directory (dim 16, 4 heads, 1 layer, vocabulary 300) with the GPT-2
// fixture's tokenizer.json, and config.json passed through the edit.
std::string tiny_hf_llama(const TempDir& d, const std::string& name, const JsonEdit& edit_config = nullptr);

// A copy of a family fixture (tests/fixtures/families/<family>) with config.json edited.
std::string family_copy(const TempDir& d, const std::string& family, const std::string& name,
                        const JsonEdit& edit_config = nullptr);

// A JSON value nested `depth` arrays deep.
std::string deep_json(int depth);

void write_text(const std::string& path, const std::string& text);
nlohmann::json read_json(const std::string& path);
void write_json_file(const std::string& path, const nlohmann::json& j);

}  // namespace tq::test
