#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/atomic_file.h"

namespace tq::test {

TempDir::TempDir() {
  char tmpl[] = "/tmp/tquant-test-XXXXXX";
  char* p = mkdtemp(tmpl);
  if (!p) std::abort();
  path = p;
}

TempDir::~TempDir() { remove_tree(path); }

std::string write_sample_text(const TempDir& d) {
  std::string text;
  for (int i = 0; i < 60; i++) text += "the quick brown fox " + std::to_string(i * 37 % 101) + " jumps over the lazy dog\n";
  std::ofstream(d.file("t.txt")) << text;
  return d.file("t.txt");
}

CliResult run_cli(const std::string& args) {
  TempDir d;
  std::string cmd = std::string(TQ_CLI_PATH) + " " + args + " >" + d.file("out") + " 2>" + d.file("err");
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
