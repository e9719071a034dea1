// What tquant train, finetune and quanttune share: the data and optimizer
// flags, the split of the text into lines to fit and held-out lines, and the
// end of a language-model run (GGUF output, loss curve, held-out perplexity).
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "nn/train.h"
#include "text/dataset.h"

namespace tq::cli {

struct TrainFlags {
  TrainOptions opt;
  std::string data, out, log_csv;
  int64_t offset = 0, limit = 0;  // the slice of --data lines to use
  double holdout = 0.1;           // the last fraction of those lines is not trained on
  double warmup = 0.05;           // fraction of the steps
  int ctx = 256;                  // tokens per training sequence
  bool resume = false;
};
// The flags, with f's current values as their defaults.
void add_train_flags(CLI::App* cmd, TrainFlags& f);
TrainOptions train_options(const TrainFlags& f);

// The lines of --data (after --offset/--limit): those to fit, and the held-out tail, also as a
// lines-protocol spec of at most ctx tokens per line.
struct LmSplit {
  std::vector<std::string> fit, held_lines;
  DataSpec held;
  int64_t first_line = 0;  // index of the first fitted line in the file's non-empty lines
};
LmSplit split_lines(const TrainFlags& f);

// Perplexity of the held-out lines (lines protocol).
double held_out_ppl(const Model& m, const LmSplit& s, const char* label);
// GGUF f32 output and, with --log, the loss curve as CSV.
void write_lm_outputs(const Model& m, const Trainer& t, const TrainFlags& f);

}  // namespace tq::cli
