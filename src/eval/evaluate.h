// One entry point for "how good is this model on this data", whatever the
// data kind: perplexity for text, accuracy for labelled sets. With a
// reference model the divergence figures come too.
#pragma once
#include <nlohmann/json.hpp>

#include "nn/forward.h"
#include "text/dataset.h"

namespace tq {

struct EvalResult {
  std::string metric;   // "ppl" or "accuracy"
  double value = 0;     // the metric of the model
  double ref_value = 0; // the metric of the reference (when compared)
  nlohmann::json json;  // all figures with the stable keys of design.md
};

// Evaluates m (with hooks) on the data; ref (with ref_hooks) is compared on the same inputs.
EvalResult evaluate(const Model& m, const DataSpec& data, Hooks& hooks = no_hooks(), const Model* ref = nullptr,
                    Hooks* ref_hooks = nullptr);

}  // namespace tq
