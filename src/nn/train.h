// Training and fine-tuning: B examples in one forward, the task loss is the
// cross-entropy of every logits row that has a target (next tokens for a
// language model, labels for a classifier), AdamW with warm-up + cosine
// decay and global norm clipping, a seeded data order, atomic checkpoints,
// and a resume that continues with the same bits as an uninterrupted run
// (same seed and thread count).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/safetensors.h"
#include "nn/forward.h"
#include "nn/optim.h"

namespace tq {

// Where examples come from: the trainer picks example indices, the source fills a batch and
// the target of every logits row (next tokens for a language model, labels for a classifier;
// −1: not scored).
struct BatchSource {
  virtual ~BatchSource() = default;
  virtual int64_t size() const = 0;                // examples
  virtual int64_t tokens_per_example() const = 0;  // for the tokens/s figure
  virtual void fill(const int64_t* idx, int n, Batch& b, std::vector<int32_t>& targets) const = 0;
};

// Language modelling: example i is the window stream[i·T, i·T + T] (T + 1 tokens); the
// model reads the first T and is scored on the next token at each of them.
struct TokenWindows : BatchSource {
  std::vector<int32_t> stream;
  int T = 0;
  TokenWindows(std::vector<int32_t> stream, int T);
  int64_t size() const override;
  int64_t tokens_per_example() const override { return T; }
  void fill(const int64_t* idx, int n, Batch& b, std::vector<int32_t>& targets) const override;
};
// Lines as one stream, each line [BOS] + its tokens (the packing llama2.c trains with).
std::vector<int32_t> token_stream(const Tokenizer& tok, const std::vector<std::string>& lines);

// Classification: n examples of T patches (P values each) or T tokens, one label each;
// the task loss is the label cross-entropy on the classifier logits.
struct LabelledExamples : BatchSource {
  int T = 0, P = 0;              // P > 0: image patches, else tokens
  std::vector<float> patches;    // [n, T, P]
  std::vector<int32_t> tokens;   // [n, T]
  std::vector<int32_t> labels;   // [n]
  int64_t size() const override { return (int64_t)labels.size(); }
  int64_t tokens_per_example() const override { return T; }
  void fill(const int64_t* idx, int n, Batch& b, std::vector<int32_t>& targets) const override;
};
// The labelled examples of batches that share one length T (image batches, say), in order.
LabelledExamples labelled_examples(const std::vector<Batch>& batches, int patch_dim);

// A seeded order over n examples: a fresh Fisher–Yates permutation from rng each epoch.
struct Sampler {
  Rng rng;
  int64_t n = 0, cursor = 0;
  std::vector<int64_t> order;
  Sampler(int64_t n, uint64_t seed);
  int64_t next();
};

// A hook that adds a loss term of its own to the task loss (QuantTune's outlier loss):
// begin() comes before each training forward, the hook's backward adds the term's gradient,
// value() is the term's weighted value in the last forward.
struct LossHook : Hooks {
  virtual void begin() = 0;
  virtual double value() const = 0;
  virtual const char* name() const = 0;
};

struct TrainOptions {
  int64_t steps = 1000;
  int batch = 8;
  Schedule schedule;  // lr, min_lr, warmup; total is set to steps
  AdamW adam;
  float clip = 1.0f;  // global gradient norm; 0: no clipping
  uint64_t seed = 1;  // data order
  int64_t stop_after = 0;  // end this run after that many updates in all (0: at steps); the schedule spans steps
  std::string checkpoint;        // file written every checkpoint_every steps and at the end (empty: none)
  int64_t checkpoint_every = 0;
  std::string label = "train";   // progress label; TQ_QUIET silences it
};

struct StepLog {
  int64_t step;  // 1-based: the number of updates done
  float lr;
  double loss;   // task loss + the hook's term
  double extra;  // the hook's term alone
  double grad_norm;
  double seconds;
};

struct Trainer {
  Model& model;
  const BatchSource& data;
  TrainOptions opt;
  LossHook* hook;  // may be null
  AdamState adam;
  Sampler sampler;
  std::vector<StepLog> log;
  std::vector<SafeTensorOut> extra;  // saved with every checkpoint (a tokenizer, say)

  Trainer(Model& m, const BatchSource& data, TrainOptions opt, LossHook* hook = nullptr);
  StepLog step();  // one update on the next batch
  // Trains up to opt.steps (or opt.stop_after) updates. Every `every` updates check(*this) runs and may stop the
  // run by returning false (QuantTune's guard).
  void run(int64_t every = 0, const std::function<bool(Trainer&)>& check = {});
  // Model, moments, step, data order, loss curve and `extra`, written atomically.
  void save(const std::string& path) const;
  void resume(const std::string& path);

 private:
  Workspace ws_;
  Batch batch_;
  std::vector<int32_t> targets_;
  Model grads_;
  std::vector<float> dlogits_;
  std::vector<int64_t> idx_;
};

// Mean task loss and top-1 accuracy over the scored rows of every example, in order.
struct TaskLoss {
  double loss = 0, accuracy = 0;
  int64_t rows = 0;
};
TaskLoss task_loss(const Model& m, const BatchSource& data, int batch, Hooks& hooks = no_hooks());

// A fresh model for training from scratch: weights N(0, 0.02²), the projections into the
// residual stream (attn_output, ffn_down) scaled by 1/√(2·layers), norm gains 1, biases 0.
Model init_model(const Config& c, uint64_t seed);

// The loss curve as CSV: step,lr,loss,extra,grad_norm,seconds.
std::string loss_csv(const std::vector<StepLog>& log);
// The record of a run's optimizer settings.
nlohmann::json optimizer_json(const TrainOptions& opt);

}  // namespace tq
