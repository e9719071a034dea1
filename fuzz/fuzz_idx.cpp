// libFuzzer target: image files. The first byte picks the reader (IDX with 1,
// 2 or 3 dimensions, or PGM/PPM) and the second the slice; the rest is the
// file. Any input ends in pixels or a tq::Error.
#include "core/error.h"
#include "fuzz_util.h"
#include "text/images.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::string path = tq::fuzz::put_file("image", tq::fuzz::as_text(data + 2, size - 2));
  tq::DataSpec slice = tq::slice_of(data[1] & 7, data[1] >> 3);
  try {
    if (data[0] % 4 == 3) {
      tq::ImageSet s = tq::read_pnm(path);
      std::vector<float> patches((size_t)s.image_size());
      const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
      if (s.height % 4 == 0 && s.width % 4 == 0)
        tq::image_patches(patches.data(), s.image(0), s.channels, s.height, s.width, 4, mean, std);
    } else {
      tq::read_idx(path, data[0] % 4 + 1, slice);
    }
  } catch (const tq::Error&) {
  }
  return 0;
}
