// Shared by the fuzz targets: parsers that read files get the input written
// to a file in a directory of this process (rewritten in place each run), and
// every target swallows tq::Error, the one outcome allowed besides success.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace tq::fuzz {

// A directory for this process's files, made once and removed at exit: in
// $TMPDIR, else in memory (/dev/shm; rewriting a file on disk per input is 80x slower), else /tmp.
inline const std::string& work_dir() {
  struct Dir {
    std::string path;
    Dir() {
      const char* tmp = std::getenv("TMPDIR");
      std::error_code ec;
      path = std::string(tmp ? tmp : std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : "/tmp") +
             "/tquant-fuzz-XXXXXX";
      if (!mkdtemp(path.data())) std::abort();
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// A subdirectory of work_dir(), made once.
inline std::string sub_dir(const std::string& name) {
  std::string path = work_dir() + "/" + name;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  return path;
}

// Writes bytes to work_dir()/name and returns the path.
inline std::string put_file(const std::string& name, std::string_view bytes) {
  std::string path = work_dir() + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) std::abort();
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) std::abort();
    done += (size_t)n;
  }
  ::close(fd);
  return path;
}

inline void drop_file(const std::string& name) { ::unlink((work_dir() + "/" + name).c_str()); }

inline std::string_view as_text(const uint8_t* data, size_t size) { return {(const char*)data, size}; }

}  // namespace tq::fuzz
