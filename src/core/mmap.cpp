#include "core/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace tq {

// Opens a regular file for reading. O_NONBLOCK: opening a FIFO must not wait for a writer.
static int open_regular(const std::string& path, struct stat& st) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) bad_input("cannot open {}: {}", path, std::strerror(errno));
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad_input("{} is not a regular file", path);
  }
  return fd;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  struct stat st;
  int fd = open_regular(path, st);
  size_ = (size_t)st.st_size;
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      bad_input("cannot map {}: {}", path, std::strerror(errno));
    }
    data_ = (const uint8_t*)p;
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) munmap((void*)data_, size_);
}

std::string read_text_file(const std::string& path) {
  struct stat st;
  int fd = open_regular(path, st);
  if (st.st_size > kMaxTextFileBytes) {
    ::close(fd);
    bad_input("{} has {} bytes, more than the {} a text or JSON file may have", path, (int64_t)st.st_size,
              kMaxTextFileBytes);
  }
  std::string text((size_t)st.st_size, '\0');
  size_t got = 0;
  while (got < text.size()) {  // a file that shrinks while read ends early; one that grows is cut at its size
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      bad_input("cannot read {}: {}", path, std::strerror(err));
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  ::close(fd);
  text.resize(got);
  return text;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool file_exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace tq
