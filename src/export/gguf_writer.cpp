#include "export/gguf_writer.h"

#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/ggml_types.h"

namespace tq {

namespace {
enum : uint32_t { t_u32 = 4, t_i32 = 5, t_f32 = 6, t_bool = 7, t_string = 8, t_array = 9 };

template <class T>
void put(std::vector<uint8_t>& b, T v) {
  size_t n = b.size();
  b.resize(n + sizeof(T));
  std::memcpy(b.data() + n, &v, sizeof(T));
}
void put_str(std::vector<uint8_t>& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
}  // namespace

void GgufWriter::key(const std::string& k, uint32_t type) {
  put_str(meta_, k);
  put<uint32_t>(meta_, type);
  n_kv_++;
}
void GgufWriter::add_u32(const std::string& k, uint32_t v) { key(k, t_u32), put(meta_, v); }
void GgufWriter::add_i32(const std::string& k, int32_t v) { key(k, t_i32), put(meta_, v); }
void GgufWriter::add_f32(const std::string& k, float v) { key(k, t_f32), put(meta_, v); }
void GgufWriter::add_bool(const std::string& k, bool v) { key(k, t_bool), put<uint8_t>(meta_, v ? 1 : 0); }
void GgufWriter::add_str(const std::string& k, const std::string& v) { key(k, t_string), put_str(meta_, v); }
void GgufWriter::add_str_array(const std::string& k, const std::vector<std::string>& v) {
  key(k, t_array);
  put<uint32_t>(meta_, t_string);
  put<uint64_t>(meta_, v.size());
  for (auto& s : v) put_str(meta_, s);
}
void GgufWriter::add_f32_array(const std::string& k, const std::vector<float>& v) {
  key(k, t_array);
  put<uint32_t>(meta_, t_f32);
  put<uint64_t>(meta_, v.size());
  for (float x : v) put(meta_, x);
}
void GgufWriter::add_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  key(k, t_array);
  put<uint32_t>(meta_, t_i32);
  put<uint64_t>(meta_, v.size());
  for (int32_t x : v) put(meta_, x);
}

uint64_t GgufWriter::check_shape(const std::string& name, const std::vector<int64_t>& shape, uint32_t type) const {
  const GgmlTypeInfo* ti = ggml_type_info(type);
  if (!ti) run_failed("GGUF writer: unknown ggml type {}", type);
  if (shape.empty() || shape.back() % ti->block)
    run_failed("GGUF writer: tensor {} of shape {} is not whole {} blocks", name, shape_str(shape), ti->name);
  return (uint64_t)(Tensor::count(shape) / ti->block * ti->bytes);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t type,
                            std::vector<uint8_t> data) {
  uint64_t n = check_shape(name, shape, type);
  if (n != data.size())
    run_failed("GGUF writer: tensor {} of shape {} does not match {} bytes", name, shape_str(shape), data.size());
  tensors_.push_back({name, shape, type, n, std::move(data), nullptr});
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t type, Fill fill) {
  tensors_.push_back({name, shape, type, check_shape(name, shape, type), {}, std::move(fill)});
}

void GgufWriter::add_tensor_layout(const std::string& name, const std::vector<int64_t>& shape, uint32_t type) {
  tensors_.push_back({name, shape, type, check_shape(name, shape, type), {}, nullptr});
}

void GgufWriter::add_f32_tensor(const std::string& name, const Tensor& t) {
  std::vector<uint8_t> d(t.numel() * 4);
  std::memcpy(d.data(), t.ptr(), d.size());
  add_tensor(name, t.shape, ggml_f32, std::move(d));
}

std::vector<uint8_t> GgufWriter::header(uint32_t alignment) const {
  std::vector<uint8_t> h;
  put<uint32_t>(h, 0x46554747);
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, n_kv_ + (alignment != 32 ? 1 : 0));
  h.insert(h.end(), meta_.begin(), meta_.end());
  if (alignment != 32) {
    put_str(h, "general.alignment");
    put<uint32_t>(h, t_u32);
    put<uint32_t>(h, alignment);
  }
  uint64_t off = 0;
  for (auto& t : tensors_) {
    put_str(h, t.name);
    put<uint32_t>(h, (uint32_t)t.shape.size());
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(h, (uint64_t)*it);  // ggml order
    put<uint32_t>(h, t.type);
    put<uint64_t>(h, off);
    off += (t.nbytes + alignment - 1) / alignment * alignment;
  }
  h.resize((h.size() + alignment - 1) / alignment * alignment, 0);
  return h;
}

uint64_t GgufWriter::file_size(uint32_t alignment) const {
  uint64_t n = header(alignment).size();
  for (auto& t : tensors_) n += (t.nbytes + alignment - 1) / alignment * alignment;
  return n;
}

void GgufWriter::write(const std::string& path, uint32_t alignment) const {
  for (auto& t : tensors_)
    if (t.data.size() != t.nbytes && !t.fill) run_failed("GGUF writer: tensor {} has no data (a layout-only entry)", t.name);
  std::vector<uint8_t> h = header(alignment);
  AtomicFile f(path);
  f.write(h.data(), h.size());
  std::vector<uint8_t> pad(alignment, 0);
  for (auto& t : tensors_) {
    std::vector<uint8_t> made;  // one made tensor in memory at a time (not the largest one's capacity)
    const uint8_t* bytes = t.data.data();
    if (t.fill) {
      made.assign(t.nbytes, 0);
      t.fill(made.data());
      bytes = made.data();
    }
    f.write(bytes, t.nbytes);
    size_t p = (alignment - t.nbytes % alignment) % alignment;
    f.write(pad.data(), p);
  }
  f.commit();
}

void add_llama_metadata(GgufWriter& w, const Model& m) {
  const Config& c = m.cfg;
  TQ_CHECK_INPUT(c.arch == "llama" || c.arch == "qwen2", "GGUF export supports the LLaMA family and Qwen2, not {}",
                 c.arch);
  // llama.cpp ropes llama's q/k in pairs and qwen2's in halves (its converter permutes only llama's).
  const RopeLayout rope = c.arch == "llama" ? RopeLayout::pairs : RopeLayout::halves;
  TQ_CHECK_INPUT(c.rope_layout == rope || c.pos != PosKind::rope, "GGUF export of {} needs q/k in the {} RoPE layout",
                 c.arch, rope == RopeLayout::pairs ? "pair" : "rotate-half");
  const std::string a = c.arch;
  w.add_str("general.architecture", a);
  w.add_str("general.name", "tquant export");
  w.add_u32(a + ".context_length", c.max_seq);
  w.add_u32(a + ".embedding_length", c.dim);
  w.add_u32(a + ".block_count", c.n_layers);
  w.add_u32(a + ".feed_forward_length", c.hidden);
  w.add_u32(a + ".attention.head_count", c.n_heads);
  w.add_u32(a + ".attention.head_count_kv", c.n_kv_heads);
  w.add_u32(a + ".rope.dimension_count", c.head_dim);
  w.add_f32(a + ".rope.freq_base", c.rope_theta);
  w.add_f32(a + ".attention.layer_norm_rms_epsilon", c.norm_eps);
  if (c.sliding_window > 0) w.add_u32(a + ".attention.sliding_window", c.sliding_window);
  if (!m.tok.empty()) {
    const Tokenizer& t = m.tok;
    TQ_CHECK_INPUT(t.kind == TokKind::spm || t.kind == TokKind::bpe,
                   "GGUF export writes SentencePiece and byte-level BPE tokenizers only");
    if (t.kind == TokKind::spm) {
      w.add_str("tokenizer.ggml.model", "llama");
      std::vector<std::string> pieces;
      for (auto& p : t.pieces) {
        std::string q;
        for (char ch : p) q += ch == ' ' ? std::string("\xe2\x96\x81") : std::string(1, ch);
        pieces.push_back(q);
      }
      w.add_str_array("tokenizer.ggml.tokens", pieces);
      w.add_f32_array("tokenizer.ggml.scores", t.scores.empty() ? std::vector<float>(t.size(), 0.0f) : t.scores);
    } else {  // llama.cpp's names: the split is tokenizer.ggml.pre, merges as "a b"
      // GGUF has no field for these: its readers derive them from the split, as load_gguf does.
      TQ_CHECK_INPUT(t.ignore_merges == (t.split == BpeSplit::llama3) && t.nfc == (t.split == BpeSplit::qwen2),
                     "GGUF ties ignore_merges to the Llama-3 split and NFC to Qwen2's; this tokenizer differs");
      w.add_str("tokenizer.ggml.model", "gpt2");
      w.add_str("tokenizer.ggml.pre", bpe_split_name(t.split));
      w.add_str_array("tokenizer.ggml.tokens", t.pieces);
      w.add_str_array("tokenizer.ggml.merges", t.merges);
    }
    w.add_i32_array("tokenizer.ggml.token_type",
                    t.types.empty() ? std::vector<int32_t>(t.size(), tok_normal) : t.types);
    if (t.bos >= 0) w.add_u32("tokenizer.ggml.bos_token_id", t.bos);
    if (t.eos >= 0) w.add_u32("tokenizer.ggml.eos_token_id", t.eos);
    if (t.unk >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", t.unk);
    w.add_bool("tokenizer.ggml.add_bos_token", t.add_bos);
    w.add_bool("tokenizer.ggml.add_space_prefix", t.add_space_prefix);
  }
}

void write_gguf_f32(const Model& m, const std::string& path) {
  GgufWriter w;
  add_llama_metadata(w, m);
  for (auto& nt : named_tensors(const_cast<Model&>(m))) w.add_f32_tensor(nt.name, *nt.t);
  w.write(path);
}

}  // namespace tq
