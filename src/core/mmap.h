// Read-only memory map of a whole file. Parsers take a span of its bytes and
// check every offset against span.size() before they read.
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

std::string read_text_file(const std::string& path);  // throws Error(2) if unreadable
bool is_directory(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace tq
