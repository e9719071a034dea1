// llama.cpp's importance matrices: per weight, the sum over calibration tokens of the
// squares of its input's channels, and how many tokens that sum is over.
//   imatrix.gguf  general.type "imatrix"; per weight W the F32 tensors "W.in_sum2"
//                 [n_in] (ne [n_in, n_mat] for expert stacks) and "W.counts" [n_mat];
//                 imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size
//   .dat (older)  i32 entries; per entry i32 name length, the name, i32 ncall, i32 nval,
//                 f32[nval] = the mean square times ncall; then optionally i32 last chunk,
//                 i32 length and the dataset's name
// Both read to the same sums and counts; the per-channel mean of x² is sum2 / count.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace tq {

struct ImatrixEntry {
  std::vector<float> sum2;    // [n_mat · n_in]
  std::vector<float> counts;  // [n_mat] tokens (gguf) or calls (.dat) the sums are over
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight name ("blk.0.attn_q.weight")
  std::vector<std::string> datasets;
  int64_t chunk_count = 0, chunk_size = 0;
  std::string source;  // the file, for messages

  // The mean of x² per input channel of a dense weight with `cols` inputs; bad_input naming
  // the file when the weight is missing or its size differs.
  std::vector<float> mean_square(const std::string& name, int64_t cols) const;
};

// GGUF (by its magic) or .dat; bad_input naming `name` on a malformed file.
Imatrix parse_imatrix(std::span<const uint8_t> bytes, const std::string& name);
Imatrix read_imatrix(const std::string& path);

}  // namespace tq
