// Helpers shared by the tests.
#pragma once
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "nn/forward.h"

namespace tq::test {

// Path of a file under ../shared (models and data that tests read, never copy).
inline std::string shared(const std::string& rel) { return std::string(TQ_SHARED_DIR) + "/" + rel; }

// Skips the current test when ../shared (or the named file in it) is absent.
#define TQ_REQUIRE_SHARED(rel)                                                             \
  do {                                                                                      \
    if (!::tq::file_exists(::tq::test::shared(rel)) && !::tq::is_directory(::tq::test::shared(rel))) \
      GTEST_SKIP() << "skipped: ../shared/" << (rel) << " is not present";                 \
  } while (0)

// Records every site call with its layer and shape.
struct ShapeHook : Hooks {
  std::map<std::pair<int, int>, std::pair<int, int>> seen;  // (site, layer) -> (rows, cols)
  void forward(Site s, int layer, float* x, int rows, int cols) override {
    EXPECT_FALSE(seen.count({(int)s, layer})) << site_name(s) << " twice in layer " << layer;
    seen[{(int)s, layer}] = {rows, cols};
  }
};

// ‖a − b‖ / ‖b‖
inline double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  return rel_err(a.data(), b.data(), std::min(a.size(), b.size()));
}

// A fresh temporary directory, removed at the end of the test.
struct TempDir {
  std::string path;
  TempDir();
  ~TempDir();
  std::string file(const std::string& name) const { return path + "/" + name; }
};

// Writes 60 short varied lines of text to d/t.txt (calibration and evaluation
// data for the byte-vocabulary random models) and returns the path.
std::string write_sample_text(const TempDir& d);


// An IDX file of unsigned bytes: the header for dims, then the payload.
std::string idx_bytes(int ndim, const std::vector<uint32_t>& dims, const std::string& payload);
// n labelled 28×28 images in MNIST's files in d: noise, and a bright square whose place is the label (0–9).
void write_synthetic_mnist(const TempDir& d, int n, uint64_t seed);

// Runs the tquant CLI; returns its exit status and captures stdout/stderr.
struct CliResult {
  int status;
  std::string out, err;
};
CliResult run_cli(const std::string& args);
// Runs a shell command line (one that runs tquant), capturing stdout and stderr.
CliResult run_cli_shell(const std::string& command);
// The tquant binary the CLI tests run: this build's, or $TQ_CLI when set.
std::string cli_path();

// Runs f with n OpenMP threads, then restores the previous count.
template <class F>
void with_threads(int n, F f) {
  int old = omp_get_max_threads();
  omp_set_num_threads(n);
  f();
  omp_set_num_threads(old);
}

}  // namespace tq::test
