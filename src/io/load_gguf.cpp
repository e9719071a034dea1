#include "core/checked.h"
#include "core/error.h"
#include "io/gguf.h"
#include "io/load.h"

namespace tq {

static Tokenizer gguf_tokenizer(const GgufFile& g) {
  Tokenizer tok;
  if (!g.meta.contains("tokenizer.ggml.model")) return tok;
  std::string kind = g.get_str("tokenizer.ggml.model");
  if (kind == "llama") tok.kind = TokKind::spm;
  else if (kind == "gpt2") tok.kind = TokKind::bpe;
  else if (kind == "bert") tok.kind = TokKind::wordpiece;
  else bad_input("GGUF tokenizer model '{}' is not supported (llama, gpt2, bert are)", kind);
  auto array_of = [&](const char* key, auto check) {
    auto it = g.meta.find(key);
    if (it == g.meta.end()) return false;
    if (!it->is_array()) bad_input("GGUF metadata '{}' is not an array", key);
    for (auto& v : *it)
      if (!check(v)) bad_input("GGUF metadata '{}' has an element of the wrong type", key);
    return true;
  };
  if (!array_of("tokenizer.ggml.tokens", [](auto& v) { return v.is_string(); }))
    bad_input("GGUF metadata 'tokenizer.ggml.tokens' is missing");
  for (auto& v : g.meta["tokenizer.ggml.tokens"]) {
    std::string p = v.get<std::string>();
    if (tok.kind == TokKind::spm) p = spm_unescape(p);
    tok.pieces.push_back(std::move(p));
  }
  if (array_of("tokenizer.ggml.scores", [](auto& v) { return v.is_number(); }))
    for (auto& v : g.meta["tokenizer.ggml.scores"]) tok.scores.push_back(v.get<float>());
  if (array_of("tokenizer.ggml.token_type", [](auto& v) { return v.is_number_integer(); }))
    for (auto& v : g.meta["tokenizer.ggml.token_type"]) tok.types.push_back(v.get<int32_t>());
  if (array_of("tokenizer.ggml.merges", [](auto& v) { return v.is_string(); }))
    for (auto& v : g.meta["tokenizer.ggml.merges"]) tok.merges.push_back(v.get<std::string>());
  for (auto [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", &tok.bos},
                         {"tokenizer.ggml.eos_token_id", &tok.eos},
                         {"tokenizer.ggml.unknown_token_id", &tok.unk},
                         {"tokenizer.ggml.padding_token_id", &tok.pad}}) {
    const int64_t v = g.get_int(key, -1);
    *id = v == UINT32_MAX ? -1 : to_int(v, std::string("GGUF ") + key);  // u32 −1 is llama.cpp's "none"
  }
  if (g.meta.contains("tokenizer.ggml.add_bos_token") && g.meta["tokenizer.ggml.add_bos_token"].is_boolean())
    tok.add_bos = g.meta["tokenizer.ggml.add_bos_token"].get<bool>();
  tok.add_space_prefix = tok.kind == TokKind::spm;  // llama.cpp's default: only SentencePiece prepends a space
  if (g.meta.contains("tokenizer.ggml.add_space_prefix") && g.meta["tokenizer.ggml.add_space_prefix"].is_boolean())
    tok.add_space_prefix = g.meta["tokenizer.ggml.add_space_prefix"].get<bool>();
  if (tok.kind == TokKind::bpe && g.meta.contains("tokenizer.ggml.pre") && g.meta["tokenizer.ggml.pre"].is_string()) {
    tok.split = bpe_split_named(g.get_str("tokenizer.ggml.pre"));
    tok.ignore_merges = tok.split == BpeSplit::llama3;  // llama.cpp's rule: Llama-3's tokenizer.json sets it
    tok.nfc = tok.split == BpeSplit::qwen2;             // Qwen2's tokenizer.json normalises to NFC
  }
  tok.finalize();
  return tok;
}

Model model_from_gguf(const GgufFile& g, bool lazy) {
  {
    std::string arch = g.get_str("general.architecture");
    // qwen2 is llama with q/k/v biases (optional tensors below) and q/k rows as HF has them
    // (llama.cpp's converter permutes llama's into the pair layout, not qwen2's).
    if (arch != "llama" && arch != "qwen2") bad_input("GGUF architecture '{}' is not supported (llama, qwen2 are)", arch);
    Model m;
    Config& c = m.cfg;
    c.arch = arch;
    auto key = [&](const char* k) { return arch + "." + k; };
    // Sizes narrowed with a check: block_count 2^32 + 1 must not load as one layer.
    auto size = [&](const char* k, int64_t fallback = -1) {
      return to_int(fallback < 0 ? g.get_int(key(k)) : g.get_int(key(k), fallback), "GGUF " + key(k));
    };
    c.dim = size("embedding_length");
    c.n_layers = size("block_count");
    c.hidden = size("feed_forward_length");
    c.n_heads = size("attention.head_count");
    c.n_kv_heads = size("attention.head_count_kv", c.n_heads);
    TQ_CHECK_INPUT(c.n_heads > 0 && c.dim > 0 && c.dim % c.n_heads == 0, "GGUF: embedding length {} and {} heads",
                   c.dim, c.n_heads);
    c.head_dim = c.dim / c.n_heads;
    c.max_seq = size("context_length", 2048);
    c.norm = NormKind::rms;
    c.norm_eps = (float)g.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5);
    c.rope_theta = (float)g.get_float(key("rope.freq_base"), 10000.0);
    c.rope_layout = arch == "llama" ? RopeLayout::pairs : RopeLayout::halves;
    c.sliding_window = size("attention.sliding_window", 0);  // written by tquant for Mistral (llama.cpp ignores it)
    c.pos = PosKind::rope;
    c.act = ActKind::silu;
    c.gated = true;
    c.causal = true;
    const GgufTensorInfo* emb = g.find("token_embd.weight");
    if (!emb) bad_input("GGUF has no token_embd.weight");
    TQ_CHECK_INPUT(emb->ne.size() == 2, "GGUF token_embd.weight is not a matrix");
    c.vocab = to_int(emb->ne[1], "GGUF token_embd.weight rows");
    c.n_out = c.vocab;
    c.tied_head = g.find("output.weight") == nullptr;
    TQ_CHECK_INPUT(c.dim == emb->ne[0], "GGUF token_embd.weight has width {}, expected {}", emb->ne[0], c.dim);
    int64_t file_elems = 0;
    for (auto& t : g.tensors) file_elems += t.numel();
    validate_config(c, file_elems);
    allocate(m, true, true, false);  // shapes; biases are optional: those the file lacks are dropped
    for (auto& nt : named_tensors(m)) {
      const GgufTensorInfo* t = g.find(nt.name);
      bool bias = nt.name.size() > 5 && nt.name.compare(nt.name.size() - 5, 5, ".bias") == 0;
      if (!t && bias) {
        *nt.t = Tensor();
        continue;
      }
      if (!t) bad_input("GGUF has no tensor '{}'", nt.name);
      if (t->shape() != nt.t->shape)
        bad_input("GGUF tensor '{}' has shape {}, expected {}", nt.name, shape_str(t->shape()), shape_str(nt.t->shape));
      *nt.t = lazy && t->ne.size() >= 2 ? g.stored(*t) : g.read(*t);
    }
    m.tok = gguf_tokenizer(g);
    validate(m);
    return m;
  }
}

Model load_gguf_model(const std::string& path, bool lazy) {
  GgufFile g = read_gguf(path);
  try {
    return model_from_gguf(g, lazy);
  } catch (const Error& e) {
    throw Error(e.exit_code, path + ": " + e.what());
  }
}

}  // namespace tq
