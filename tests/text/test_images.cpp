// Image and sentence datasets: IDX, PNM, SST-2 TSV, and the cut into patches.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "test_util.h"
#include "text/dataset.h"
#include "text/images.h"

namespace tq {

namespace {

void spit(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string idx(int ndim, std::vector<uint32_t> dims, const std::string& payload) {
  return test::idx_bytes(ndim, dims, payload);
}

bool rejects(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code, 2) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return true;
  }
  return false;
}

}  // namespace

TEST(Idx, ReadsSlicesAndRejectsEveryTruncation) {
  test::TempDir d;
  std::string pixels(3 * 2 * 2, 0);
  for (size_t i = 0; i < pixels.size(); i++) pixels[i] = (char)(10 * i);
  std::string images = idx(3, {3, 2, 2}, pixels), labels = idx(1, {3}, std::string("\x07\x02\x01", 3));
  spit(d.file("t10k-images-idx3-ubyte"), images);
  spit(d.file("t10k-labels-idx1-ubyte"), labels);
  ImageSet s = read_mnist(d.path, slice_of(1, 1));
  EXPECT_EQ(s.n, 1);
  EXPECT_EQ(s.height, 2);
  EXPECT_EQ(s.labels, std::vector<int32_t>{2});
  EXPECT_EQ(std::vector<uint8_t>(s.pixels.begin(), s.pixels.end()), (std::vector<uint8_t>{40, 50, 60, 70}));
  EXPECT_EQ(read_mnist(d.path, slice_of(1)).n, 2);
  EXPECT_TRUE(rejects([&] { read_mnist(d.path, slice_of(4)); }));
  for (size_t n = 0; n < images.size(); n++) {
    spit(d.file("t10k-images-idx3-ubyte"), images.substr(0, n));
    EXPECT_TRUE(rejects([&] { read_mnist(d.path); })) << n;
  }
  spit(d.file("t10k-images-idx3-ubyte"), images + "x");  // trailing byte
  EXPECT_TRUE(rejects([&] { read_mnist(d.path); }));
  spit(d.file("t10k-images-idx3-ubyte"), idx(1, {12}, pixels));  // labels where images belong
  EXPECT_TRUE(rejects([&] { read_mnist(d.path); }));
  spit(d.file("t10k-images-idx3-ubyte"), idx(3, {2, 2, 3}, pixels));  // 2 images, 3 labels
  EXPECT_TRUE(rejects([&] { read_mnist(d.path); }));
  spit(d.file("t10k-images-idx3-ubyte"), idx(3, {0x40000000, 1, 1}, pixels));
  EXPECT_TRUE(rejects([&] { read_mnist(d.path); }));
  EXPECT_TRUE(rejects([&] { read_mnist(d.file("nowhere")); }));
}

TEST(Idx, SharedMnistTestSet) {
  TQ_REQUIRE_SHARED("data/mnist/t10k-images-idx3-ubyte");
  ImageSet s = read_mnist(test::shared("data/mnist"));
  EXPECT_EQ(s.n, 10000);
  EXPECT_EQ(s.height, 28);
  EXPECT_EQ(s.labels[0], 7);  // the first test digit
  EXPECT_EQ(read_mnist(test::shared("data/mnist"), slice_of(9990, 50)).n, 10);
}

// Patches row-major over the grid, values in (channel, row, column) order, normalised per channel.
TEST(Patches, ConvolutionOrderAndNormalisation) {
  const int C = 2, H = 4, W = 4, P = 2;
  std::vector<uint8_t> img(C * H * W);
  for (size_t i = 0; i < img.size(); i++) img[i] = (uint8_t)i;  // value = c·16 + y·4 + x
  float mean[2] = {0, 0}, std[2] = {1, 1};
  std::vector<float> out(4 * C * P * P);
  image_patches(out.data(), img.data(), C, H, W, P, mean, std);
  std::vector<int> got;
  for (float v : out) got.push_back((int)std::lround(v * 255));
  // Patch 1 is grid (0, 1): x from 2; its values are c0 rows 0-1, then c1.
  EXPECT_EQ(std::vector<int>(got.begin() + 8, got.begin() + 16), (std::vector<int>{2, 3, 6, 7, 18, 19, 22, 23}));
  EXPECT_EQ(got[24], 10);  // patch 3 = grid (1, 1) starts at y 2, x 2
  float m2[2] = {0.5f, 0.1307f}, s2[2] = {0.5f, 0.3081f};
  image_patches(out.data(), img.data(), C, H, W, P, m2, s2);
  EXPECT_FLOAT_EQ(out[0], (0.0f / 255 - 0.5f) / 0.5f);
  EXPECT_FLOAT_EQ(out[4], (16.0f / 255 - 0.1307f) / 0.3081f);
}

TEST(Pnm, ReadsGrayAndColourAndRejectsBadFiles) {
  test::TempDir d;
  spit(d.file("g.pgm"), std::string("P5\n# a comment\n2 1\n255\n") + std::string("\x00\xff", 2));
  ImageSet g = read_pnm(d.file("g.pgm"));
  EXPECT_EQ(g.channels, 1);
  EXPECT_EQ(g.width, 2);
  EXPECT_EQ(std::vector<uint8_t>(g.pixels.begin(), g.pixels.end()), (std::vector<uint8_t>{0, 255}));
  spit(d.file("c.ppm"), std::string("P6 2 1 255 ") + "abcdef");
  ImageSet c = read_pnm(d.file("c.ppm"));
  EXPECT_EQ(c.channels, 3);
  EXPECT_EQ(std::string(c.pixels.begin(), c.pixels.end()), "adbecf");  // planar (C, H, W)
  for (std::string bad : {std::string("P5 2 1 255\n") + "x", std::string("P5 2 1 65535\nxxxx"),
                          std::string("P2 2 1 255\n0 1"), std::string("P5 -2 1 255\nxx"), std::string("P5 2"),
                          std::string("P5 2 1 255")}) {
    spit(d.file("b.pgm"), bad);
    EXPECT_TRUE(rejects([&] { read_pnm(d.file("b.pgm")); })) << bad;
  }
}

TEST(Sst2, ReadsRowsAndRejectsBadOnes) {
  test::TempDir d;
  spit(d.file("dev.tsv"), "sentence\tlabel\nit 's good . \t1\nbleak \t0\r\nok\t1\n");
  auto ex = read_sst2(d.file("dev.tsv"), {});
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[0].text, "it 's good . ");
  EXPECT_EQ(ex[1].label, 0);
  EXPECT_EQ(read_sst2(d.file("dev.tsv"), slice_of(1, 1)).at(0).text, "bleak ");
  for (std::string bad : {"sentence\nx\n", "sentence\tlabel\nx\tpos\n", "sentence\tlabel\nx\t1\t2\n",
                          "label\tsentence\nx\n", ""}) {
    spit(d.file("b.tsv"), bad);
    EXPECT_TRUE(rejects([&] { read_sst2(d.file("b.tsv"), {}); })) << bad;
  }
}

TEST(Sst2, SharedDevSet) {
  TQ_REQUIRE_SHARED("data/sst2/dev.tsv");
  auto ex = read_sst2(test::shared("data/sst2/dev.tsv"), {});
  ASSERT_EQ(ex.size(), 872u);
  int pos = 0;
  for (auto& e : ex) pos += e.label;
  EXPECT_EQ(pos, 444);  // the README's count of positive rows
}

}  // namespace tq
