// Outputs are written to a temporary name and renamed into place when
// complete, so a failed run never leaves a half-written file or directory.
// The temporary is "<target>.tmp-<pid>". It is removed when the writer is
// destroyed without commit (an error), when the process is interrupted
// (SIGINT, SIGTERM: see remove_temp_outputs_on_signal), and, after a SIGKILL,
// by the next run writing the same target, once that pid is gone.
// Under mpirun only rank 0 keeps what it commits (core/ranks.h).
#pragma once
#include <cstdio>
#include <string>
#include <string_view>

namespace tq {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // opens path + ".tmp-<pid>" for writing
  ~AtomicFile();                          // removes the temporary unless committed
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();  // flush, fsync, rename over path
 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
};

void write_file_atomic(const std::string& path, std::string_view content);

// A directory built under a temporary name; commit() replaces dir with it.
class AtomicDir {
 public:
  explicit AtomicDir(std::string dir);
  // A directory that a killed or failed run leaves behind to be continued: its
  // temporary is "<dir>.partial", kept (not removed) until commit().
  static AtomicDir resumable(std::string dir);
  bool existed() const { return existed_; }  // the .partial was there already (a resume)
  ~AtomicDir();  // removes the temporary directory unless committed
  const std::string& tmp() const { return tmp_; }
  std::string file(const std::string& name) const { return tmp_ + "/" + name; }
  void commit();
 private:
  AtomicDir() = default;
  std::string dir_, tmp_;
  bool done_ = false, keep_ = false, existed_ = false;
};

void remove_tree(const std::string& path);
void make_dirs(const std::string& path);

// Installs handlers for SIGINT and SIGTERM that remove every temporary output
// of this process and exit with status 130 or 143 (128 + the signal). Call
// once, at the start of main.
void remove_temp_outputs_on_signal();
// Removes "<target>.tmp-<pid>" (and "<target>.old-<pid>", put back when the
// target is missing) left by processes that no longer run. The writers call it.
void remove_stale_temps(const std::string& target);

}  // namespace tq
