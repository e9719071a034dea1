#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace tq {

namespace fs = std::filesystem;

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp-" + std::to_string(getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) run_failed("cannot write {}: {}", tmp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n) run_failed("write to {} failed: {}", tmp_, std::strerror(errno));
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0 || fsync(fileno(f_)) != 0) run_failed("cannot flush {}: {}", tmp_, std::strerror(errno));
  std::fclose(f_);
  f_ = nullptr;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_.c_str());
    run_failed("cannot rename {} to {}: {}", tmp_, path_, std::strerror(errno));
  }
}

void write_file_atomic(const std::string& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) run_failed("cannot create directory {}: {}", path, ec.message());
}

AtomicDir::AtomicDir(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  tmp_ = dir_ + ".tmp-" + std::to_string(getpid());
  remove_tree(tmp_);
  make_dirs(tmp_);
}

AtomicDir::~AtomicDir() {
  if (!done_) remove_tree(tmp_);
}

void AtomicDir::commit() {
  std::error_code ec;
  std::string old = dir_ + ".old-" + std::to_string(getpid());
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
  done_ = true;
}

}  // namespace tq
