#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/rng.h"
#include "io/atomic_file.h"

namespace tq::test {

TempDir::TempDir() {
  char tmpl[] = "/tmp/tquant-test-XXXXXX";
  char* p = mkdtemp(tmpl);
  if (!p) std::abort();
  path = p;
}

TempDir::~TempDir() {
  if (!std::getenv("TQ_KEEP_TEST_DIRS")) remove_tree(path);  // kept for debugging a failure
}

std::string write_sample_text(const TempDir& d) {
  std::string text;
  for (int i = 0; i < 60; i++) text += "the quick brown fox " + std::to_string(i * 37 % 101) + " jumps over the lazy dog\n";
  std::ofstream(d.file("t.txt")) << text;
  return d.file("t.txt");
}

std::string idx_bytes(int ndim, const std::vector<uint32_t>& dims, const std::string& payload) {
  std::string b = {0, 0, 8, (char)ndim};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b += (char)(d >> s & 0xff);
  return b + payload;
}

void write_synthetic_mnist(const TempDir& d, int n, uint64_t seed) {
  Rng rng(seed);
  std::string pixels((size_t)n * 28 * 28, 0), labels(n, 0);
  for (int i = 0; i < n; i++) {
    int label = (int)rng.below(10), r0 = 2 + 12 * (label / 5), c0 = 2 + 5 * (label % 5);
    labels[i] = (char)label;
    for (int r = 0; r < 28; r++)
      for (int c = 0; c < 28; c++) {
        bool in = r >= r0 && r < r0 + 8 && c >= c0 && c < c0 + 4;
        pixels[((size_t)i * 28 + r) * 28 + c] = (char)(in ? 200 + rng.below(56) : rng.below(40));
      }
  }
  std::ofstream(d.file("t10k-images-idx3-ubyte"), std::ios::binary) << idx_bytes(3, {(uint32_t)n, 28, 28}, pixels);
  std::ofstream(d.file("t10k-labels-idx1-ubyte"), std::ios::binary) << idx_bytes(1, {(uint32_t)n}, labels);
}

std::string cli_path() {
  const char* other = std::getenv("TQ_CLI");  // another build of tquant (an older one, to compare)
  return other && *other ? other : TQ_CLI_PATH;
}

CliResult run_cli(const std::string& args) { return run_cli_shell(cli_path() + " " + args); }

CliResult run_cli_shell(const std::string& command) {
  TempDir d;
  std::string cmd = "(" + command + ") >" + d.file("out") + " 2>" + d.file("err");
  int rc = std::system(cmd.c_str());
  CliResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  auto slurp = [](const std::string& f) {
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(d.file("out"));
  r.err = slurp(d.file("err"));
  return r;
}

}  // namespace tq::test
