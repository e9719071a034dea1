// Helpers for the kernel tests: every test runs once per instruction-set path
// this machine supports (scalar, avx2, avx512, amx), named by the path.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu.h"
#include "test_util.h"

namespace tq::test {

struct IsaName {
  std::string operator()(const ::testing::TestParamInfo<Isa>& p) const { return isa_name(p.param); }
};

#define TQ_FOR_EACH_ISA(suite) \
  INSTANTIATE_TEST_SUITE_P(Kernel, suite, ::testing::ValuesIn(::tq::supported_isas()), ::tq::test::IsaName())

// Elementwise |a − b| ≤ tol·|b| (plus a floor for values that are exactly zero).
inline void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < a.size() && bad < 5; i++)
    if (!(std::fabs((double)a[i] - b[i]) <= tol * std::fabs((double)b[i]) + 1e-30)) {
      ADD_FAILURE() << what << " at " << i << ": " << a[i] << " vs " << b[i];
      bad++;
    }
}

}  // namespace tq::test
