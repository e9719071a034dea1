// Classification evaluation: accuracy against labels, and against a reference
// model the KL divergence of class distributions and top-1 agreement.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/forward.h"
#include "text/dataset.h"
#include "text/images.h"

namespace tq {

// Classifier inputs of one length, with their labels: B images or sentences.
struct ClassBatch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens;  // [B·T] (text models)
  std::vector<float> patches;   // [B·T·patch_dim] (image models)
  std::vector<int32_t> labels;  // [B]; −1 when unknown
  Input input() const;
};

// Images in batches of up to `batch`, normalised and cut into patches as the model expects.
std::vector<ClassBatch> image_batches(const Config& c, const ImageSet& s, int batch = 64);
// One batch per sentence: [CLS] tokens [SEP], truncated to the model's positions.
std::vector<ClassBatch> text_batches(const Model& m, const std::vector<TextExample>& ex);

struct ClassEval {
  int64_t correct = 0, total = 0;
  bool compared = false;
  std::vector<float> kld;  // per example: KL(P_ref ‖ P_model) over the classes
  int64_t top1_same = 0;
  double accuracy() const { return total ? (double)correct / total : 0; }
  double top1_agree() const { return total ? (double)top1_same / total : 0; }
  nlohmann::json json() const;  // stable keys: accuracy, correct, total, kld_mean, kld_p99, top1_agree
};

// Batches run in parallel with single-threaded BLAS; results merge in batch order.
ClassEval eval_classifier(const Model& m, const std::vector<ClassBatch>& batches, Hooks& hooks = no_hooks(),
                          const Model* ref = nullptr, Hooks* ref_hooks = nullptr, const char* label = "eval");

}  // namespace tq
