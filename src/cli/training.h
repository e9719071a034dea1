// What tquant train, finetune and quanttune share: the data and optimizer
// flags and the outputs of a run. The task they fit (the split of the --data
// pool and the held-out metric) is nn/task.h.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/task.h"
#include "nn/train.h"

namespace tq::cli {

struct TrainFlags {
  TrainOptions opt;
  TaskSpec task;
  std::string out, log_csv;
  double warmup = 0.05;  // fraction of the steps
  bool resume = false;
};
// The flags, with f's current values as their defaults.
void add_train_flags(CLI::App* cmd, TrainFlags& f);
TrainOptions train_options(const TrainFlags& f);
// -o OUT.gguf holds LLaMA models only: checked against the model before any work.
void check_output(const Model& m, const TrainFlags& f);

// -o OUT.gguf: GGUF f32 (LLaMA family); any other name: a tquant directory with an empty
// quantization plan whose passes record `pass`, which tquant eval, quantize and the trainers
// load back exactly. With --log, the loss curve as CSV.
void write_outputs(const Model& m, const std::vector<StepLog>& log, const TrainFlags& f, const nlohmann::json& pass);

}  // namespace tq::cli
