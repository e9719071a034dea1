// GGUF v3 writer: typed metadata and tensors, written atomically.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/model.h"

namespace tq {

class GgufWriter {
 public:
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_str(const std::string& key, const std::string& v);
  void add_str_array(const std::string& key, const std::vector<std::string>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // shape is row-major ([out, in]); data holds the encoded bytes of the ggml type.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t ggml_type,
                  std::vector<uint8_t> data);
  // The same with the bytes made while the file is written, one tensor at a time, in the
  // order added: `fill` writes the tensor's encoded bytes to dst. A file larger than memory.
  using Fill = std::function<void(uint8_t* dst)>;
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t ggml_type, Fill fill);
  void add_f32_tensor(const std::string& name, const Tensor& t);
  // A tensor's place in the layout only (its name, shape and type), for file_size(); write() refuses it.
  void add_tensor_layout(const std::string& name, const std::vector<int64_t>& shape, uint32_t ggml_type);
  void write(const std::string& path, uint32_t alignment = 32) const;
  // The exact size of the file write() makes: the header and every tensor padded to the alignment.
  uint64_t file_size(uint32_t alignment = 32) const;

 private:
  struct Tensor_ {
    std::string name;
    std::vector<int64_t> shape;
    uint32_t type;
    uint64_t nbytes;
    std::vector<uint8_t> data;  // or, when empty, made by fill; neither: a layout-only entry
    Fill fill;
  };
  uint64_t check_shape(const std::string& name, const std::vector<int64_t>& shape, uint32_t type) const;
  std::vector<uint8_t> meta_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor_> tensors_;
  void key(const std::string& k, uint32_t type);
  std::vector<uint8_t> header(uint32_t alignment) const;
};

// Writes a LLaMA-family model as an F32 GGUF with the metadata and tokenizer llama.cpp reads.
void write_gguf_f32(const Model& m, const std::string& path);
// The llama.cpp metadata of a LLaMA model (architecture, sizes, tokenizer) into w.
void add_llama_metadata(GgufWriter& w, const Model& m);

}  // namespace tq
