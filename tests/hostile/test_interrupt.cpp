// Class 9 of the hostile corpus: interrupted runs. SIGINT or SIGTERM during
// quantize -o OUT or export --gguf F removes the temporary output and exits
// 130 or 143; after a SIGKILL the temporary stays until the next run writing
// the same target finds its writer gone and removes it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "export/gguf_writer.h"
#include "hostile/hostile_util.h"
#include "io/load.h"
#include "nn/random_model.h"

namespace tq::test {
namespace {

namespace fs = std::filesystem;

// Starts tquant with args, stdout and stderr into err_file.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& err_file) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* e = std::freopen(err_file.c_str(), "w", stderr);
    FILE* o = std::freopen("/dev/null", "w", stdout);
    (void)e, (void)o;
    std::vector<std::string> argv = {cli_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> p;
    for (auto& a : argv) p.push_back(a.data());
    p.push_back(nullptr);
    execv(p[0], p.data());
    _exit(127);
  }
  return pid;
}

// The names in dir that begin with prefix.
std::vector<std::string> entries(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().filename().string());
  return out;
}

struct Interrupted {
  bool caught = false;  // the signal arrived while the temporary existed
  int status = -1;      // exit status, or 128 + signal when killed
};

// Runs tquant until its temporary output target.tmp-<pid> exists, stops it there, sends sig, lets it go on.
Interrupted interrupt_while_writing(const std::vector<std::string>& args, const std::string& target, int sig,
                                    const std::string& err_file) {
  Interrupted r;
  pid_t pid = spawn_cli(args, err_file);
  const std::string tmp = target + ".tmp-" + std::to_string(pid);
  int wstatus = 0;
  bool exited = false;
  auto start = std::chrono::steady_clock::now();
  while (!exited && std::chrono::steady_clock::now() - start < std::chrono::seconds(300)) {
    if (fs::exists(tmp)) {
      kill(pid, SIGSTOP);
      r.caught = fs::exists(tmp);  // still there once stopped: the signal comes before the commit's rename
      kill(pid, sig);
      kill(pid, SIGCONT);
      break;
    }
    exited = waitpid(pid, &wstatus, WNOHANG) == pid;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (!exited) waitpid(pid, &wstatus, 0);
  r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return r;
}

// A model large enough (4.7M parameters) that writing its outputs takes a while.
std::string big_model(const TempDir& d) {
  const std::string path = d.file("big.gguf");
  if (!fs::exists(path)) write_gguf_f32(random_model(llama_config(256, 4, 4, 4, 512, 4096, 64), 9, 0.05f), path);
  return path;
}

// Every attempt must leave no temporary (and a complete output when the commit came first);
// the signal must be seen to interrupt the run at least once in ten attempts.
void expect_interrupts(const std::vector<std::string>& args, const TempDir& d, const std::string& target, int sig) {
  const std::string name = fs::path(target).filename().string();
  bool interrupted = false;
  for (int attempt = 0; attempt < 10 && !interrupted; attempt++) {
    fs::remove_all(target);
    Interrupted r = interrupt_while_writing(args, target, sig, d.file("err"));
    const std::string err = read_text_file(d.file("err"));
    EXPECT_TRUE(entries(d.path, name + ".tmp-").empty()) << "a temporary output was left behind";
    EXPECT_TRUE(entries(d.path, name + ".old-").empty());
    if (!r.caught) continue;
    if (r.status == 0) {  // the signal came during the final rename: the output is complete
      EXPECT_NO_THROW(load_model(target));
      continue;
    }
    interrupted = true;
    EXPECT_EQ(r.status, 128 + sig) << err;
    EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(target));
  }
  EXPECT_TRUE(interrupted) << "never interrupted tquant " << args[0] << " while it wrote";
}

TEST(Interrupt, SigintOrSigtermDuringExportLeavesNothing) {
  TempDir d;
  const std::string model = big_model(d), out = d.file("out.gguf");
  expect_interrupts({"export", model, "--gguf", out}, d, out, SIGINT);
  expect_interrupts({"export", model, "--gguf", out}, d, out, SIGTERM);
}

// A whole-model run (--whole) leaves nothing; a block-sequential one keeps q.partial to be
// resumed (tests/passes/test_pipeline.cpp).
TEST(Interrupt, SigintDuringQuantizeLeavesNothing) {
  TempDir d;
  const std::string model = big_model(d), out = d.file("q"), text = write_sample_text(d);
  expect_interrupts({"quantize", model, "--recipe", "w8a8-rtn", "--whole", "--calib", text + "?limit=2", "-o", out},
                    d, out, SIGINT);
}

TEST(Interrupt, AfterSigkillTheNextRunRemovesTheStaleTemporary) {
  TempDir d;
  const std::string model = big_model(d), out = d.file("out.gguf"), text = write_sample_text(d);
  int killed = 0;
  for (int attempt = 0; attempt < 10 && killed == 0; attempt++) {
    Interrupted r = interrupt_while_writing({"export", model, "--gguf", out}, out, SIGKILL, d.file("err"));
    if (!r.caught) continue;
    killed++;
    EXPECT_EQ(r.status, 128 + SIGKILL);
    ASSERT_EQ(entries(d.path, "out.gguf.tmp-").size(), 1u) << "SIGKILL leaves the temporary";
  }
  ASSERT_EQ(killed, 1);
  // A temporary whose writer still runs (this test) stays.
  const std::string live = out + ".tmp-" + std::to_string(getpid());
  write_text(live, "in progress");
  CliResult again = run_cli("export " + model + " --gguf " + out);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(entries(d.path, "out.gguf.tmp-"), std::vector<std::string>{fs::path(live).filename().string()});
  EXPECT_EQ(load_model(out).cfg.dim, 256);
  // The same for a directory output, and an old output moved aside by a writer killed in its commit.
  const std::string q = d.file("q");
  fs::create_directories(q + ".tmp-999999999");
  write_text(q + ".tmp-999999999/model.safetensors", "partial");
  CliResult first = run_cli("quantize " + model + " --recipe w8a8-rtn --calib '" + text + "?limit=2' -o " + q);
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_TRUE(entries(d.path, "q.tmp-").empty());
  fs::rename(q, q + ".old-999999999");  // killed after moving the old output aside
  CliResult third = run_cli("quantize " + model + " --recipe w4a16-g64-rtn --calib '" + text + "?limit=2' -o " + q);
  ASSERT_EQ(third.status, 0) << third.err;
  EXPECT_TRUE(entries(d.path, "q.old-").empty());
  EXPECT_TRUE(fs::exists(q + "/plan.json"));
}

}  // namespace
}  // namespace tq::test
