#include "text/images.h"

#include <cctype>
#include <cstring>

#include "core/checked.h"
#include "core/error.h"
#include "core/mmap.h"
#include "text/dataset.h"

namespace tq {

IdxBytes read_idx(const std::string& path, int ndim, const DataSpec& slice) {
  MappedFile f(path);
  auto b = f.bytes();
  auto u32 = [&](size_t at) {
    return (uint32_t)b[at] << 24 | (uint32_t)b[at + 1] << 16 | (uint32_t)b[at + 2] << 8 | (uint32_t)b[at + 3];
  };
  size_t header = 4 + 4 * (size_t)ndim;
  if (b.size() < header) bad_input("{}: {} bytes is too short for an IDX header", path, b.size());
  if (b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] != ndim)
    bad_input("{}: not an IDX file of unsigned bytes with {} dimensions (magic {:02x}{:02x}{:02x}{:02x})", path, ndim,
              b[0], b[1], b[2], b[3]);
  IdxBytes out;
  int64_t item = 1;
  for (int d = 0; d < ndim; d++) {
    uint32_t v = u32(4 + 4 * d);
    if (v == 0 || v > (1u << 28)) bad_input("{}: dimension {} is {}", path, d, v);
    out.dims.push_back(v);
    if (d > 0) item *= v;
  }
  if (item > (1 << 24)) bad_input("{}: items of {} bytes are implausibly large", path, item);
  if ((uint64_t)(b.size() - header) != (uint64_t)out.dims[0] * item)
    bad_input("{}: {} items of {} bytes need {} bytes after the header, the file has {}", path, out.dims[0], item,
              out.dims[0] * item, b.size() - header);
  auto [first, end] = slice_range(out.dims[0], slice);
  out.values.assign(b.begin() + header + first * item, b.begin() + header + end * item);
  return out;
}

ImageSet read_mnist(const std::string& dir, const DataSpec& slice) {
  std::string prefix;
  for (const char* p : {"t10k", "train"})
    if (file_exists(dir + "/" + p + "-images-idx3-ubyte")) {
      prefix = dir + "/" + p;
      break;
    }
  if (prefix.empty())
    bad_input("{}: no t10k-images-idx3-ubyte (or train-images-idx3-ubyte); gunzip the MNIST files there", dir);
  IdxBytes img = read_idx(prefix + "-images-idx3-ubyte", 3, slice);
  IdxBytes lab = read_idx(prefix + "-labels-idx1-ubyte", 1, slice);
  if (lab.dims[0] != img.dims[0])
    bad_input("{}: {} images but {} labels", dir, img.dims[0], lab.dims[0]);
  ImageSet s;
  s.height = (int)img.dims[1];
  s.width = (int)img.dims[2];
  s.n = (int64_t)lab.values.size();
  s.pixels = std::move(img.values);
  s.labels.assign(lab.values.begin(), lab.values.end());
  return s;
}

ImageSet read_pnm(const std::string& path) {
  MappedFile f(path);
  auto b = f.bytes();
  size_t at = 0;
  // Header: magic, width, height, maxval, separated by white space and # comments, then one white-space byte.
  auto token = [&]() -> std::string {
    while (at < b.size()) {
      if (b[at] == '#') {
        while (at < b.size() && b[at] != '\n') at++;
      } else if (std::isspace(b[at])) {
        at++;
      } else {
        break;
      }
    }
    std::string t;
    while (at < b.size() && !std::isspace(b[at]) && b[at] != '#' && t.size() < 16) t += (char)b[at++];
    return t;
  };
  auto number = [&](const char* what) {
    return (int)parse_int(token(), 0, 1 << 20, fmt::format("{}: PNM header {}", path, what));
  };
  std::string magic = token();
  if (magic != "P5" && magic != "P6") bad_input("{}: not a binary PGM (P5) or PPM (P6) image", path);
  ImageSet s;
  s.n = 1;
  s.channels = magic == "P5" ? 1 : 3;
  s.width = number("width");
  s.height = number("height");
  int maxval = number("maxval");
  if (s.width <= 0 || s.height <= 0 || s.width > 16384 || s.height > 16384)
    bad_input("{}: image size {}x{} is out of range", path, s.width, s.height);
  if (maxval != 255) bad_input("{}: maxval {} is not supported (255 is)", path, maxval);
  if (at >= b.size() || !std::isspace(b[at])) bad_input("{}: the PNM header does not end in white space", path);
  at++;
  size_t need = (size_t)s.image_size();
  if (b.size() - at != need) bad_input("{}: {} pixel bytes, expected {}", path, b.size() - at, need);
  s.pixels.resize(need);
  const int HW = s.height * s.width;
  for (int p = 0; p < HW; p++)  // interleaved (H, W, C) to planar (C, H, W)
    for (int c = 0; c < s.channels; c++) s.pixels[(size_t)c * HW + p] = b[at + (size_t)p * s.channels + c];
  return s;
}

void image_patches(float* out, const uint8_t* img, int C, int H, int W, int P, const float* mean, const float* std) {
  const int gw = W / P, gh = H / P, pd = C * P * P;
  for (int gy = 0; gy < gh; gy++)
    for (int gx = 0; gx < gw; gx++) {
      float* o = out + ((int64_t)gy * gw + gx) * pd;
      for (int c = 0; c < C; c++)
        for (int y = 0; y < P; y++)
          for (int x = 0; x < P; x++) {
            float v = (float)img[((int64_t)c * H + gy * P + y) * W + gx * P + x] / 255.0f;
            *o++ = (v - mean[c]) / std[c];
          }
    }
}

}  // namespace tq
