// Read-only memory map of a whole file. Parsers take a span of its bytes and
// check every offset against span.size() before they read. Only regular
// files are read: a FIFO would block forever and /dev/zero never ends.
#pragma once
#include <cstdint>
#include <span>
#include <string>

namespace tq {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error(2) if unreadable
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Text files (data, JSON) are read whole into memory: at most this many bytes.
constexpr int64_t kMaxTextFileBytes = int64_t(4) << 30;
std::string read_text_file(const std::string& path);  // throws Error(2) if unreadable, not regular or too large
bool is_directory(const std::string& path);
bool file_exists(const std::string& path);  // a regular file

}  // namespace tq
