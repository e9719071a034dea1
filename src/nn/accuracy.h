// Classification evaluation: accuracy against labels, and against a reference
// model the KL divergence of class distributions and top-1 agreement.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/forward.h"
#include "text/dataset.h"
#include "text/images.h"

namespace tq {

// Images in batches of up to `batch`, normalised and cut into patches as the model expects.
std::vector<Batch> image_batches(const Config& c, const ImageSet& s, int batch = 64);
// One batch per sentence: [CLS] tokens [SEP], truncated to the model's positions.
std::vector<Batch> text_batches(const Model& m, const std::vector<TextExample>& ex);

struct ClassEval {
  int64_t correct = 0, total = 0;
  bool compared = false;
  std::vector<float> kld;  // per example: KL(P_ref ‖ P_model) over the classes
  int64_t top1_same = 0, ref_correct = 0;
  double accuracy() const { return total ? (double)correct / total : 0; }
  double top1_agree() const { return total ? (double)top1_same / total : 0; }
  nlohmann::json json() const;  // stable keys: accuracy, correct, total, kld_mean, kld_p99, top1_agree
};

// Batches run in parallel with single-threaded BLAS; results merge in batch order.
ClassEval eval_classifier(const Model& m, const std::vector<Batch>& batches, Hooks& hooks = no_hooks(),
                          const Model* ref = nullptr, Hooks* ref_hooks = nullptr, const char* label = "eval");

}  // namespace tq
