#include "hostile/hostile_util.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/mmap.h"
#include "export/gguf_writer.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "passes/pass.h"

namespace tq::test {

namespace fs = std::filesystem;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

CliResult run_cli_limited(const std::string& args, int seconds) {
  std::string limit = kSanitized ? "" : "ulimit -v 8388608; ";  // KiB: 8 GiB
  return run_cli_shell(limit + "exec timeout -k 5 " + std::to_string(seconds) + " " + cli_path() + " " + args);
}

CaseOutcome run_case(const HostileCase& c) {
  CliResult r = run_cli_limited(c.args);
  CaseOutcome o;
  o.status = r.status;
  o.err = r.err;
  o.timed_out = r.status == 124 || r.status == 137;
  // Progress lines may come first; the error is the last line, and the only one.
  std::vector<std::string> lines;
  std::istringstream in(r.err);
  int errors = 0;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) {
      lines.push_back(l);
      errors += l.find("error") != std::string::npos;
    }
  if (o.timed_out) {
    o.why = "hung (killed by the time limit)";
  } else if (r.status != c.status) {
    o.why = fmt::format("exit status {}, expected {}", r.status, c.status);
  } else if (c.status != 0 && (lines.empty() || lines.back().rfind("tquant: error: ", 0) != 0 || errors != 1)) {
    o.why = "stderr does not end in one 'tquant: error:' line";
  } else {
    for (auto& s : c.says)
      if (r.err.find(s) == std::string::npos) o.why = fmt::format("the message does not say '{}'", s);
  }
  o.ok = o.why.empty();
  return o;
}

void expect_all(const std::string& cls, const std::vector<HostileCase>& cases) {
  int wrong = 0;
  for (auto& c : cases) {
    CaseOutcome o = run_case(c);
    wrong += !o.ok;
    EXPECT_TRUE(o.ok) << cls << " / " << c.name << ": " << o.why << "\n  tquant " << c.args << "\n  stderr: "
                      << o.err.substr(0, 600);
  }
  fmt::print(stderr, "hostile: {}: {} of {} cases wrong\n", cls, wrong, cases.size());
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_text_file(path)); }

void write_json_file(const std::string& path, const nlohmann::json& j) { write_text(path, j.dump(1)); }

std::string deep_json(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

namespace {

enum : uint32_t { g_u8, g_i8, g_u16, g_i16, g_u32, g_i32, g_f32, g_bool, g_string, g_array, g_u64, g_i64, g_f64 };

void put(std::string& b, const void* p, size_t n) { b.append((const char*)p, n); }
template <class T>
void put(std::string& b, T v) {
  put(b, &v, sizeof(v));
}
void put_str(std::string& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  b += s;
}

uint32_t gguf_type(const nlohmann::json& v) {
  if (v.is_boolean()) return g_bool;
  if (v.is_string()) return g_string;
  if (v.is_array()) return g_array;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= UINT32_MAX ? g_u32 : g_u64;
  if (v.is_number_integer()) return v.get<int64_t>() >= INT32_MIN ? g_i32 : g_i64;
  return g_f32;
}

void put_value(std::string& b, const nlohmann::json& v, uint32_t type) {
  switch (type) {
    case g_bool: put<uint8_t>(b, v.get<bool>()); break;
    case g_string: put_str(b, v.get<std::string>()); break;
    case g_u32: put<uint32_t>(b, (uint32_t)v.get<uint64_t>()); break;
    case g_u64: put<uint64_t>(b, v.get<uint64_t>()); break;
    case g_i32: put<int32_t>(b, (int32_t)v.get<int64_t>()); break;
    case g_i64: put<int64_t>(b, v.get<int64_t>()); break;
    case g_f32: put<float>(b, v.get<float>()); break;
    case g_array: {
      uint32_t et = v.empty() ? g_u32 : gguf_type(v[0]);
      for (auto& e : v)  // one element type: f32 when any element is a float
        if (gguf_type(e) == g_f32) et = g_f32;
      put<uint32_t>(b, et);
      put<uint64_t>(b, v.size());
      for (auto& e : v) put_value(b, e, et);
      break;
    }
  }
}

}  // namespace

void write_raw_gguf(const std::string& path, const nlohmann::json& meta,
                    const std::vector<std::pair<std::string, Tensor>>& tensors) {
  const uint64_t align = 32;
  std::string b = "GGUF";
  put<uint32_t>(b, 3);
  put<uint64_t>(b, tensors.size());
  put<uint64_t>(b, meta.size());
  for (auto& [k, v] : meta.items()) {
    put_str(b, k);
    uint32_t t = gguf_type(v);
    put<uint32_t>(b, t);
    put_value(b, v, t);
  }
  uint64_t off = 0;
  for (auto& [name, t] : tensors) {
    put_str(b, name);
    put<uint32_t>(b, (uint32_t)t.ndim());
    for (int i = t.ndim() - 1; i >= 0; i--) put<uint64_t>(b, (uint64_t)t.dim(i));
    put<uint32_t>(b, 0);  // F32
    put<uint64_t>(b, off);
    off += ((uint64_t)t.numel() * 4 + align - 1) / align * align;
  }
  b.resize((b.size() + align - 1) / align * align, '\0');
  for (auto& [name, t] : tensors) {
    put(b, t.ptr(), (size_t)t.numel() * 4);
    b.resize((b.size() + align - 1) / align * align, '\0');
  }
  write_text(path, b);
}

static Model tiny_model() { return random_model(llama_config(32, 2, 4, 2, 64, 300, 64), 11, 0.2f); }

std::string tiny_gguf(const TempDir& d, const std::string& name, const GgufEdit& edit) {
  const std::string path = d.file(name);
  write_gguf_f32(tiny_model(), path);
  if (!edit) return path;
  GgufFile g = read_gguf(path);
  nlohmann::json meta = g.meta;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (auto& t : g.tensors) tensors.push_back({t.name, g.read(t)});
  edit(meta, tensors);
  write_raw_gguf(path, meta, tensors);
  return path;
}

std::string tiny_tquant_dir(const TempDir& d, const std::string& name, const JsonEdit& edit_plan,
                            const JsonEdit& edit_config, const std::function<void(Config&)>& edit_model) {
  Config c = llama_config(32, 2, 4, 2, 64, 300, 64);
  if (edit_model) edit_model(c);
  Model m = random_model(c, 11, 0.2f);
  if (!fs::exists(d.file("calib.txt"))) {
    std::string text;
    for (int i = 0; i < 24; i++) text += "a small calibration line number " + std::to_string(i * 7) + "\n";
    write_text(d.file("calib.txt"), text);
  }
  CalibData cd = load_calib(parse_data_spec(d.file("calib.txt")), m);
  QuantPlan plan;
  PassContext ctx(m, plan, cd);
  run_recipe(recipe_from_json({{"passes", {{{"pass", "rtn"}, {"w_bits", 8}, {"a_bits", 8}}}}}, "w8a8"), ctx);
  const std::string dir = d.file(name);
  save_tquant_dir(dir, m, plan);
  if (edit_plan) {
    nlohmann::json p = read_json(dir + "/plan.json");
    edit_plan(p);
    write_json_file(dir + "/plan.json", p);
  }
  if (edit_config) {
    nlohmann::json c = read_json(dir + "/config.json");
    edit_config(c);
    write_json_file(dir + "/config.json", c);
  }
  return dir;
}

std::string family_copy(const TempDir& d, const std::string& family, const std::string& name,
                        const JsonEdit& edit_config) {
  const std::string dir = d.file(name);
  fs::copy(std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/" + family, dir, fs::copy_options::recursive);
  if (edit_config) {
    nlohmann::json c = read_json(dir + "/config.json");
    edit_config(c);
    write_json_file(dir + "/config.json", c);
  }
  return dir;
}

std::string tiny_hf_llama(const TempDir& d, const std::string& name, const JsonEdit& edit_config) {
  const std::string dir = d.file(name);
  fs::create_directories(dir);
  Model m = random_model(llama_config(16, 1, 4, 4, 32, 300, 32), 5, 0.2f);
  std::vector<SafeTensorOut> ts = {f32_tensor("model.embed_tokens.weight", m.tok_embd),
                                   f32_tensor("model.norm.weight", m.final_norm.g),
                                   f32_tensor("lm_head.weight", m.head.w)};
  const std::string p = "model.layers.0.";
  Block& b = m.blocks[0];
  for (auto [n, t] : {std::pair{"input_layernorm", &b.attn_norm.g}, {"post_attention_layernorm", &b.mlp_norm.g},
                      {"self_attn.q_proj", &b.q.w}, {"self_attn.k_proj", &b.k.w}, {"self_attn.v_proj", &b.v.w},
                      {"self_attn.o_proj", &b.o.w}, {"mlp.gate_proj", &b.gate.w}, {"mlp.up_proj", &b.up.w},
                      {"mlp.down_proj", &b.down.w}})
    ts.push_back(f32_tensor(p + n + ".weight", *t));
  write_safetensors(dir + "/model.safetensors", ts);
  nlohmann::json c = {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 16}, {"num_hidden_layers", 1},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 4}, {"intermediate_size", 32},
                      {"vocab_size", 300}, {"max_position_embeddings", 32}};
  if (edit_config) edit_config(c);
  write_json_file(dir + "/config.json", c);
  fs::copy(std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/gpt2/tokenizer.json", dir + "/tokenizer.json");
  return dir;
}

}  // namespace tq::test
