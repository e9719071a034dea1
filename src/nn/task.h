// A fine-tuning task named by a data spec (what tquant train, finetune and
// quanttune, and the quanttune pass, share): the split of the pool into
// examples to fit and a held-out tail, and the held-out metric.
//
// Either next-token prediction on the lines of a text file, judged by held-out
// perplexity, or classification of labelled MNIST images, judged by held-out
// accuracy.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/train.h"
#include "text/dataset.h"

namespace tq {

struct TaskSpec {
  std::string data;                 // text FILE or mnist:DIR, optionally ?from=&to=&offset=&limit=
  int64_t offset = -1, limit = -1;  // override the spec's own offset/limit when set
  double holdout = 0.1;             // the last fraction of the pool is not trained on
  int ctx = 256;                    // tokens per training sequence
};
// The pool: data with offset/limit applied.
DataSpec pool_spec(const TaskSpec& t);

// The lines of a text pool: those to fit, and the held-out tail, also as a lines-protocol spec
// of at most ctx tokens per line.
struct LmSplit {
  std::vector<std::string> fit, held_lines;
  DataSpec held;
  int64_t first_line = 0;  // index of the first fitted line in the file's non-empty lines
};
LmSplit split_lines(const TaskSpec& t);
// Perplexity of the held-out lines (lines protocol); NaN when none are held out.
double held_out_ppl(const Model& m, const LmSplit& s, const char* label);

// A fine-tuning task: the examples to fit, the held-out tail (null when too small to fill one
// example), and how that tail is scored.
struct TaskData {
  std::unique_ptr<BatchSource> fit, held;
  std::string metric;     // "ppl" (lower is better) or "accuracy" (higher is better)
  std::string task_loss;  // for the record
  std::string unit;       // "lines" or "images"
  int64_t fit_count = 0, held_count = 0;
  DataSpec held_spec;     // the held-out tail as a spec that tquant eval reads
  std::vector<Batch> held_batches;  // classifiers: the held-out images, for accuracy
  bool lower_is_better() const { return metric == "ppl"; }
};
// The task that t names for model m, checked against the model (an LM for text, a
// classifier taking images of the data's size for mnist:DIR).
TaskData task_data(const Model& m, const TaskSpec& t);
// The held-out metric of m; NaN when nothing is held out.
double held_out(const Model& m, const TaskData& d, const char* label);
// Whether `value` is no worse than `base` by more than the relative tolerance.
bool within_tolerance(const TaskData& d, double value, double base, double tolerance);
// A line such as "held-out accuracy 98.00% -> 99.00% (100 images: mnist:DIR?from=0.9&offset=900)".
std::string held_out_line(const TaskData& d, const char* label, double before, double after);

}  // namespace tq
