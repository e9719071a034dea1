// Importance matrices: llama.cpp's golden imatrix.gguf reads with the names and sizes of
// stories260K's weights; one written from tquant's calibration reads back to the same sums,
// which are the calibration Hessians' diagonals; the older .dat form reads to the same means;
// the gguf pass's scale search follows the file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "export/imatrix_export.h"
#include "io/imatrix.h"
#include "io/load.h"
#include "nn/block.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "quant/hessian.h"
#include "quant/observer.h"
#include "small_inputs.h"
#include "test_util.h"

namespace tq {

namespace {

CalibData some_calib() { return test::token_calib(5, 20, 53, 29, 7); }

Model small_llama() { return random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 5, 0.2f); }

using test::expect_refusal;

void put_i32(std::string& s, int32_t v) { s.append((const char*)&v, 4); }

}  // namespace

TEST(Imatrix, GoldenLlamaCppFileReadsWithStoriesWeightNamesAndSizes) {
  TQ_REQUIRE_SHARED("golden/llama.cpp-quants/stories260K-imatrix.gguf");
  Imatrix im = read_imatrix(test::shared("golden/llama.cpp-quants/stories260K-imatrix.gguf"));
  Model m = load_model(test::shared("models/stories260K/stories260K.gguf"));
  EXPECT_EQ(im.chunk_count, 163);
  EXPECT_EQ(im.chunk_size, 256);
  ASSERT_EQ(im.datasets.size(), 1u);
  // llama-imatrix covers the blocks' linears (not the output head, by default).
  EXPECT_EQ(im.entries.size(), (size_t)m.cfg.n_layers * 7);
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (auto& nl : block_linears(m.blocks[l])) {
      const std::string name = weight_name(l, nl.slot);
      ASSERT_TRUE(im.entries.count(name)) << name;
      const ImatrixEntry& e = im.entries.at(name);
      EXPECT_EQ((int64_t)e.sum2.size(), nl.lin->w.cols()) << name;
      ASSERT_EQ(e.counts.size(), 1u);
      EXPECT_EQ(e.counts[0], 163 * 256) << name;  // tokens: every chunk of 256
      std::vector<float> ms = im.mean_square(name, nl.lin->w.cols());
      double mean = 0;
      for (float v : ms) mean += v / ms.size();
      EXPECT_GT(mean, 0) << name;
    }
  expect_refusal([&] { im.mean_square("blk.0.ffn_down.weight", 64); }, "stories260K-imatrix.gguf");
}

TEST(Imatrix, WrittenFromCalibrationReadsBackToTheHessianDiagonals) {
  test::TempDir d;
  Model m = small_llama();
  CalibData cd = some_calib();
  Imatrix im = collect_imatrix(m, cd, "calib.txt");
  write_imatrix(d.file("i.gguf"), im);
  Imatrix back = read_imatrix(d.file("i.gguf"));
  EXPECT_EQ(back.datasets, std::vector<std::string>{"calib.txt"});
  EXPECT_EQ(back.chunk_count, 5);
  EXPECT_EQ(back.chunk_size, 20);
  ASSERT_EQ(back.entries.size(), (size_t)2 * 7 + 1);  // the blocks' linears and the head
  for (auto& [name, e] : im.entries) {
    ASSERT_TRUE(back.entries.count(name)) << name;
    EXPECT_EQ(back.entries.at(name).sum2, e.sum2) << name;
    EXPECT_EQ(back.entries.at(name).counts, e.counts) << name;
  }
  // An independent reference: the calibration Hessians' diagonals over their rows.
  HessianObserver h;
  run_calibration(m, cd, h);
  for (int l = 0; l < 2; l++)
    for (const LinearDef& def : linear_table()) {
      const std::string name = weight_name(l, def.slot);
      std::vector<float> want = h.h.at(site_key(def.input, l)).mean_square();
      std::vector<float> got = back.mean_square(name, (int64_t)want.size());
      EXPECT_LT(test::rel_err(got, want), 1e-6) << name;
      EXPECT_EQ(back.entries.at(name).counts[0], 5 * 20) << name;
    }
}

TEST(Imatrix, LegacyDatReadsAsMeansTimesCalls) {
  test::TempDir d;
  std::string s;
  put_i32(s, 2);
  for (auto [name, ncall, scale] : {std::tuple{"blk.0.attn_q.weight", 10, 1.0f}, {"blk.0.ffn_down.weight", 4, 3.0f}}) {
    put_i32(s, (int32_t)std::strlen(name));
    s += name;
    put_i32(s, ncall);
    put_i32(s, 3);
    for (int j = 0; j < 3; j++) {
      float v = scale * (float)(j + 1) * (float)ncall;  // mean · ncall
      s.append((const char*)&v, 4);
    }
  }
  put_i32(s, 10);  // the trailer: last chunk, the dataset
  put_i32(s, 5);
  s += "c.txt";
  std::ofstream(d.file("i.dat"), std::ios::binary) << s;
  Imatrix im = read_imatrix(d.file("i.dat"));
  EXPECT_EQ(im.entries.size(), 2u);
  EXPECT_EQ(im.mean_square("blk.0.attn_q.weight", 3), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(im.mean_square("blk.0.ffn_down.weight", 3), (std::vector<float>{3, 6, 9}));
  EXPECT_EQ(im.datasets, std::vector<std::string>{"c.txt"});
  EXPECT_EQ(im.chunk_count, 10);
  // Truncated anywhere: one line naming the file.
  for (size_t cut : {(size_t)2, (size_t)9, (size_t)40, s.size() - 3}) {
    std::ofstream(d.file("t.dat"), std::ios::binary | std::ios::trunc) << s.substr(0, cut);
    expect_refusal([&] { read_imatrix(d.file("t.dat")); }, "t.dat");
  }
}

TEST(Imatrix, GgufPassWeighsItsScaleSearchByTheFile) {
  test::TempDir d;
  Model fp = small_llama();
  CalibData cd = some_calib();
  // An importance that puts nearly all weight on input channel 0 of every linear.
  Imatrix im = collect_imatrix(fp, cd, "calib");
  for (auto& [name, e] : im.entries)
    for (size_t c = 0; c < e.sum2.size(); c++) e.sum2[c] = c == 0 ? 1e6f : 1e-3f;
  write_imatrix(d.file("i.gguf"), im);
  auto run = [&](const std::string& file) {
    Model m = fp;
    QuantPlan plan;
    PassContext ctx(m, plan, cd);
    Recipe r = parse_recipe("gguf-Q4_0");
    override_param(r, "awq", false);
    override_param(r, "method", "rtn");  // the scale search (GPTQ's choice does not read the importance)
    if (!file.empty()) override_param(r, "imatrix_file", file);
    run_recipe(r, ctx);
    return m;
  };
  Model plain = run(""), weighted = run(d.file("i.gguf"));
  // Channel 0's squared error falls, summed over every linear; the other channels' rises.
  double e0_plain = 0, e0_weighted = 0, rest_plain = 0, rest_weighted = 0;
  for (int l = 0; l < 2; l++)
    for (const LinearDef& def : linear_table()) {
      const Tensor& w = (fp.blocks[l].*def.member).w;
      const Tensor& a = (plain.blocks[l].*def.member).w;
      const Tensor& b = (weighted.blocks[l].*def.member).w;
      if (w.cols() % 32) continue;  // F16 rows (llama.cpp's rule): no search
      for (int64_t r = 0; r < w.rows(); r++)
        for (int64_t c = 0; c < w.cols(); c++) {
          const double da = std::pow((double)a.row(r)[c] - w.row(r)[c], 2);
          const double db = std::pow((double)b.row(r)[c] - w.row(r)[c], 2);
          (c == 0 ? e0_plain : rest_plain) += da;
          (c == 0 ? e0_weighted : rest_weighted) += db;
        }
    }
  std::printf("channel 0 squared error %.4g -> %.4g, others %.4g -> %.4g\n", e0_plain, e0_weighted, rest_plain,
              rest_weighted);
  EXPECT_LT(e0_weighted, 0.5 * e0_plain);
  EXPECT_GT(rest_weighted, rest_plain);
  // A file with the wrong width for a tensor is refused naming the file.
  im.entries["blk.0.attn_q.weight"].sum2.resize(10);
  write_imatrix(d.file("bad.gguf"), im);
  expect_refusal([&] { run(d.file("bad.gguf")); }, "bad.gguf");
}

}  // namespace tq
