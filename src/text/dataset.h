// Evaluation and calibration data: what a --data/--calib SPEC names.
//   FILE            a text file, scored with --protocol lines|chunks and --ctx N
//   mnist:DIR       MNIST IDX images and labels
//   sst2:FILE       SST-2 TSV (sentence, label)
// A query selects a slice of the sequences (lines, windows, images or
// sentences): FILE?from=0.9&limit=128 takes 128 starting at 90 % of them;
// keys: from, to (fractions), offset, limit (counts after from), protocol, ctx.
// --offset N and --limit N on the command line set the same fields.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace tq {

constexpr int64_t kMaxSequences = int64_t(1) << 40;  // offset and limit beyond this are refused
constexpr int kMaxContext = 1 << 20;

struct DataSpec {
  std::string kind = "text";  // text, mnist, sst2
  std::string path;
  std::string protocol = "lines";
  int ctx = 512;
  double from = 0, to = 1;        // fractions of all sequences
  int64_t offset = 0, limit = 0;  // then skip offset and keep limit (0: all)
};
// A spec that only slices: items [offset, offset + limit) (limit 0: to the end).
inline DataSpec slice_of(int64_t offset, int64_t limit = 0) {
  DataSpec d;
  d.offset = offset;
  d.limit = limit;
  return d;
}
// [begin, end) of n sequences selected by the spec.
std::pair<int64_t, int64_t> slice_range(int64_t n, const DataSpec& spec);
DataSpec parse_data_spec(const std::string& spec);

// A token sequence to score: predictions at positions [score_from, tokens.size() − 1).
struct TextSeq {
  std::vector<int32_t> tokens;
  int score_from = 0;
};

// lines:  every line with text is [BOS] + encode(line), truncated to ctx tokens, all positions scored.
// chunks: the whole text is encoded once (BOS first) and cut into windows of ctx tokens; each
//         window starts with BOS and only its second half is scored (llama.cpp's perplexity).
std::vector<TextSeq> text_sequences(const Tokenizer& tok, const DataSpec& spec);

// The lines of a text file that hold more than white space (kept as they are).
std::vector<std::string> read_lines(const std::string& path);

// A sentence with its class.
struct TextExample {
  std::string text;
  int32_t label = 0;
};
// SST-2 (GLUE) TSV: a header naming the columns 'sentence' and 'label', then one row each.
// The rows the spec's slice (from, to, offset, limit) selects.
std::vector<TextExample> read_sst2(const std::string& path, const DataSpec& slice);

}  // namespace tq
