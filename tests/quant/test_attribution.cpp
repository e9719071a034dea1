// docs/methods.md §6.6 item 30: error attribution.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "quant/attribution.h"
#include "test_util.h"

namespace tq {

TEST(Attribution, NoOutlierMeansNoAmplification) {
  Rng r(1);
  std::vector<float> v(4096);
  for (auto& x : v) x = 2 * r.uniform() - 1;  // uniform: nothing beyond 3σ (σ ≈ 0.58)
  Attribution a = attribute_error(v.data(), (int64_t)v.size(), 8, 3.0);
  EXPECT_GT(a.e_tot, 0);
  EXPECT_EQ(a.e_amp, 0.0);
  EXPECT_EQ(a.share(), 0.0);
  EXPECT_LT(a.dr, 1.0);
}

TEST(Attribution, AGrowingOutlierTakesTheErrorOver) {
  Rng r(2);
  std::vector<float> v(4096);
  for (auto& x : v) x = (float)r.normal();
  double prev = -1;
  for (float size : {6.0f, 20.0f, 100.0f, 1000.0f}) {
    v[123] = size;
    Attribution a = attribute_error(v.data(), (int64_t)v.size(), 8, 3.0);
    EXPECT_GT(a.share(), prev) << size;
    prev = a.share();
  }
  EXPECT_GT(prev, 0.99);
  v[123] = 1e5f;  // from here the outlier's own rounding error is noise around 1
  EXPECT_GT(attribute_error(v.data(), (int64_t)v.size(), 8, 3.0).share(), 0.99);
}

TEST(Attribution, DiagnoseNamesThePlantedChannel) {
  Rng r(3);
  int rows = 64, cols = 16;
  std::vector<float> x(rows * cols);
  for (auto& v : x) v = (float)r.normal();
  for (int t = 0; t < rows; t++) x[t * cols + 11] += 12.0f;  // channel 11 is an outlier channel
  DiagnoseHook h(8, 3.0);
  h.forward(Site::up_in, 0, x.data(), rows, cols);
  auto& s = h.sites.at("blk.0.up_in");
  int worst = (int)(std::max_element(s.excess.begin(), s.excess.end()) - s.excess.begin());
  EXPECT_EQ(worst, 11);
  EXPECT_GT(s.sum.share(), 0.3);
  EXPECT_GE(s.count[11], rows - 2);  // (nearly) every value of the channel lies outside the band
}

}  // namespace tq
