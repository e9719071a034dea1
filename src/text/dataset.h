// Evaluation and calibration data: what a --data/--calib SPEC names.
//   FILE            a text file, scored with --protocol lines|chunks and --ctx N
//   mnist:DIR       MNIST IDX images and labels
//   sst2:FILE       SST-2 TSV (sentence, label)
// --offset N and --limit N select a slice of the sequences (lines, windows,
// images or sentences).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace tq {

struct DataSpec {
  std::string kind = "text";  // text, mnist, sst2
  std::string path;
  std::string protocol = "lines";
  int ctx = 512;
  int64_t offset = 0, limit = 0;  // limit 0: to the end
};
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

// The first index and the count of the slice [offset, offset + limit) of n items
// (limit 0: to the end); bad_input when offset is beyond them.
std::pair<int64_t, int64_t> slice_range(int64_t n, int64_t offset, int64_t limit);

// A sentence with its class.
struct TextExample {
  std::string text;
  int32_t label = 0;
};
// SST-2 (GLUE) TSV: a header naming the columns 'sentence' and 'label', then one row each.
std::vector<TextExample> read_sst2(const std::string& path, int64_t offset = 0, int64_t limit = 0);

}  // namespace tq
