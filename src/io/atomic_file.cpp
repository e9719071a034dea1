#include "io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/ranks.h"

namespace tq {

namespace fs = std::filesystem;

namespace {

// The temporaries of this process. Creating, committing and removing one hold
// the lock; the interrupt thread takes it for good before it removes them.
std::mutex g_mu;
std::set<std::string>& live_temps() {
  static std::set<std::string> s;
  return s;
}

std::string pid_suffix(const char* kind) { return std::string(kind) + std::to_string(getpid()); }

// Ranks other than 0 compute the same outputs but keep none (ranks.h): a file is
// discarded at commit unless it goes into one of this process's temporary
// directories (which that directory's own commit discards), so it can be read back.
bool discarded(const std::string& target) {
  if (ranks::root()) return false;
  for (auto& t : live_temps())
    if (target.rfind(t + "/", 0) == 0) return false;
  return true;
}

}  // namespace

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) run_failed("cannot create directory {}: {}", path, ec.message());
}

void remove_stale_temps(const std::string& target) {
  fs::path t(target);
  fs::path dir = t.parent_path().empty() ? fs::path(".") : t.parent_path();
  const std::string base = t.filename().string();
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    bool tmp = name.rfind(base + ".tmp-", 0) == 0, old = name.rfind(base + ".old-", 0) == 0;
    if (!tmp && !old) continue;
    const std::string digits = name.substr(base.size() + 5);
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = (pid_t)std::stol(digits);
    if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still run
    std::error_code rc;
    if (old && !fs::exists(t, rc)) {
      fs::rename(e.path(), t, rc);  // killed between moving the old output aside and putting the new one in place
    } else {
      remove_tree(e.path().string());
    }
  }
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::lock_guard<std::mutex> lock(g_mu);
  remove_stale_temps(path_);
  tmp_ = path_ + pid_suffix(".tmp-");
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) run_failed("cannot write {}: {}", tmp_, std::strerror(errno));
  live_temps().insert(tmp_);
}

AtomicFile::~AtomicFile() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
  live_temps().erase(tmp_);
}

void AtomicFile::write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n) run_failed("write to {} failed: {}", tmp_, std::strerror(errno));
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0 || fsync(fileno(f_)) != 0) run_failed("cannot flush {}: {}", tmp_, std::strerror(errno));
  std::lock_guard<std::mutex> lock(g_mu);  // after the (slow) fsync: an interrupt during it still removes the file
  std::fclose(f_);
  f_ = nullptr;
  if (discarded(path_)) {
    std::remove(tmp_.c_str());
  } else if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    run_failed("cannot rename {} to {}: {}", tmp_, path_, std::strerror(errno));
  }
  live_temps().erase(tmp_);
}

void write_file_atomic(const std::string& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

AtomicDir::AtomicDir(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  std::lock_guard<std::mutex> lock(g_mu);
  remove_stale_temps(dir_);
  tmp_ = dir_ + pid_suffix(".tmp-");
  remove_tree(tmp_);
  make_dirs(tmp_);
  live_temps().insert(tmp_);
}

AtomicDir AtomicDir::resumable(std::string dir) {
  if (!ranks::root()) return AtomicDir(std::move(dir));  // OUT.partial is rank 0's alone
  AtomicDir d;
  d.dir_ = std::move(dir);
  while (d.dir_.size() > 1 && d.dir_.back() == '/') d.dir_.pop_back();
  d.tmp_ = d.dir_ + ".partial";
  d.keep_ = true;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    remove_stale_temps(d.dir_);
  }
  std::error_code ec;
  d.existed_ = fs::is_directory(d.tmp_, ec);
  make_dirs(d.tmp_);
  return d;
}

AtomicDir::~AtomicDir() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!done_ && !keep_) remove_tree(tmp_);
  live_temps().erase(tmp_);
}

void AtomicDir::commit() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!ranks::root()) {
    remove_tree(tmp_);
    live_temps().erase(tmp_);
    done_ = true;
    return;
  }
  std::error_code ec;
  std::string old = dir_ + pid_suffix(".old-");
  bool had = fs::exists(dir_, ec);
  if (had) {
    fs::rename(dir_, old, ec);
    if (ec) run_failed("cannot move the existing {} aside: {}", dir_, ec.message());
  }
  fs::rename(tmp_, dir_, ec);
  if (ec) {
    if (had) fs::rename(old, dir_, ec);
    run_failed("cannot rename {} to {}", tmp_, dir_);
  }
  if (had) remove_tree(old);
  live_temps().erase(tmp_);
  done_ = true;
}

namespace {

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_interrupt(int sig) {
  const char c = (char)sig;
  ssize_t n = write(g_signal_pipe[1], &c, 1);  // async-signal-safe; the thread below does the work
  (void)n;
}

// Waits for a signal, then removes the temporaries and exits. It never gives
// the lock back, so no new temporary can appear while it works.
void interrupt_thread() {
  char sig = 0;
  while (read(g_signal_pipe[0], &sig, 1) != 1) {
  }
  g_mu.lock();
  std::string removed;
  for (auto& p : live_temps()) {
    remove_tree(p);
    removed += " " + p;
  }
  std::string msg = fmt::format("tquant: interrupted by {}{}{}\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                                removed.empty() ? "" : "; removed", removed);
  ssize_t n = write(2, msg.data(), msg.size());
  (void)n;
  _exit(128 + sig);
}

}  // namespace

void remove_temp_outputs_on_signal() {
  if (g_signal_pipe[0] >= 0) return;
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) run_failed("cannot create a pipe: {}", std::strerror(errno));
  std::thread(interrupt_thread).detach();
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace tq
