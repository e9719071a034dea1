// Labelled images and the cut into patches that image models take.
//   MNIST IDX files (big-endian header, then uint8 pixels or labels)
//   binary PGM (P5, grayscale) and PPM (P6, colour) files
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/dataset.h"

namespace tq {

struct ImageSet {
  int64_t n = 0;
  int channels = 1, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [n, C, H, W]
  std::vector<int32_t> labels;  // [n], or empty when unknown
  int64_t image_size() const { return (int64_t)channels * height * width; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_size(); }
};

// The MNIST images the slice selects (from, to, offset, limit of DataSpec) from DIR holding
// t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (or the train-* pair).
ImageSet read_mnist(const std::string& dir, const DataSpec& slice = {});
// One IDX file of unsigned bytes with the given number of dimensions: its dimensions
// and the values of the items the slice selects.
struct IdxBytes {
  std::vector<int64_t> dims;
  std::vector<uint8_t> values;
};
IdxBytes read_idx(const std::string& path, int ndim, const DataSpec& slice);

// One image from a binary PGM (P5) or PPM (P6) file with maxval 255; unlabelled.
ImageSet read_pnm(const std::string& path);

// The normalised patches of one (C, H, W) image: out[(H/P)·(W/P), C·P·P], patches
// row-major over the grid and the values of a patch in (C, row, col) order, as a
// stride-P convolution flattened. Each value is (pixel/255 − mean[c]) / std[c] in float.
void image_patches(float* out, const uint8_t* img, int C, int H, int W, int P, const float* mean, const float* std);

}  // namespace tq
