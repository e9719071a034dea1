// tquant bench's GEMM cases: every kernel has its case, the int8 ones on AMX and
// VNNI state their share of the peak at the measured clock.
#include <nlohmann/json.hpp>
#include <set>

#include "kernel_test.h"
#include "kernels/bench_gemm.h"
#include "test_util.h"

namespace tq {
namespace {

TEST(BenchGemm, CasesAndPeaks) {
  const double ghz = measure_clock_ghz();
  EXPECT_GT(ghz, 0.3);
  EXPECT_LT(ghz, 10.0);
  auto r = test::run_cli("bench --filter gemm --quick -t 1 --gemm-rounds 1 --gemm-seconds 0.001 --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::set<std::string> names;
  int with_peak = 0;
  for (auto& c : j) {
    names.insert(c["name"].get<std::string>());
    EXPECT_GT(c["ratio"].get<double>(), 0) << c.dump();
    if (c.contains("ours_pct_of_peak")) {
      with_peak++;
      EXPECT_EQ(c["name"], "gemm_int8_k1");
      EXPECT_GT(c["ours_pct_of_peak"].get<double>(), 0);
      EXPECT_LT(c["ours_pct_of_peak"].get<double>(), 100) << "the peak bounds what runs";
      EXPECT_GT(c["clock_ghz"].get<double>(), 0.3);
    }
  }
  for (const char* k : kGemmKernels) EXPECT_TRUE(names.count(std::string("gemm_") + k)) << k;
  EXPECT_EQ(with_peak > 0, isa_supported(Isa::avx512));
}

}  // namespace
}  // namespace tq
