// The fuzzers' seed corpus (fuzz/corpus/<target>/): small files written by our
// own code. FuzzSeeds.Write writes them (to $TQ_FUZZ_SEEDS when set: run
//   TQ_FUZZ_SEEDS=fuzz/corpus ./build/tquant_tests --gtest_filter=FuzzSeeds.Write
// to regenerate the committed corpus), and FuzzSeeds.CommittedSeedsParse checks
// that every committed seed is accepted by its parser, so the fuzzers start
// from inputs that reach deep into each format.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "core/mmap.h"
#include "export/gguf_writer.h"
#include "export/imatrix_export.h"
#include "io/imatrix.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/hf.h"
#include "io/load.h"
#include "io/safetensors.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "quant/plan.h"
#include "test_util.h"
#include "text/dataset.h"
#include "text/images.h"

namespace tq {
namespace {

namespace fs = std::filesystem;

const std::string kFixtures = std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/";

void put(const std::string& path, const std::string& bytes) {
  make_dirs(fs::path(path).parent_path().string());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string f32_bytes(const Tensor& t) { return std::string((const char*)t.ptr(), (size_t)t.numel() * 4); }

// A SentencePiece vocabulary of 16 pieces: specials, a few letters, two byte pieces.
Tokenizer small_tokenizer() {
  Tokenizer t;
  t.kind = TokKind::spm;
  t.pieces = {"<unk>", "<s>", "</s>", "<0x0A>", "<0x20>", " ", "a", "b", "c", "ab", " a", " ab", "abc", "ca", "x", "y"};
  t.types = {tok_unknown, tok_control, tok_control, tok_byte, tok_byte};
  t.types.resize(t.pieces.size(), tok_normal);
  for (size_t i = 0; i < t.pieces.size(); i++) t.scores.push_back(-(float)i);
  t.unk = 0, t.bos = 1, t.eos = 2;
  t.finalize();
  return t;
}

// The tiny model fuzz_plan_json runs plans on (fuzz/fuzz_plan_json.cpp).
Model plan_model() { return random_model(llama_config(16, 1, 2, 1, 32, 32, 8), 7); }

void write_seeds(const std::string& dir) {
  // GGUF and safetensors. Seeds stay small (a few KB): the fuzzers' inputs grow to the largest seed.
  Model m = random_model(llama_config(8, 1, 2, 1, 8, 16, 8), 1);
  m.tok = small_tokenizer();
  make_dirs(dir + "/gguf");
  write_gguf_f32(m, dir + "/gguf/tiny.gguf");
  write_gguf_f32(random_model(llama_config(8, 2, 4, 2, 16, 12, 8), 3), dir + "/gguf/no-tokenizer.gguf");
  make_dirs(dir + "/safetensors");
  write_safetensors(dir + "/safetensors/tiny.safetensors",
                    {f32_tensor("a", Tensor({2, 3}, 1.5f)), f32_tensor("b", Tensor({4}, -2.0f))}, {{"format", "pt"}});
  // HF config.json: the family byte (fuzz_hf_config.cpp), then the fixture's config.
  const char* families[] = {"opt", "gpt2", "bert", "vit"};
  for (int f = 0; f < 4; f++)
    put(dir + "/hf_config/" + families[f] + ".json",
        std::string(1, (char)f) + read_text_file(kFixtures + families[f] + "/config.json"));
  // tokenizer.json: byte-level BPE, BPE with byte fallback, WordPiece (small vocabularies; the fixture's is 5 KB).
  nlohmann::json bpe_vocab = {{"<|endoftext|>", 0}, {"H", 1}, {"e", 2}, {"l", 3}, {"o", 4}, {",", 5}, {"\xc4\xa0", 6},
                              {"w", 7}, {"r", 8}, {"d", 9}, {"!", 10}, {"ll", 11}, {"llo", 12}, {"\xc4\xa0w", 13}};
  put(dir + "/tokenizer_json/bpe.json",
      nlohmann::json({{"model", {{"type", "BPE"}, {"vocab", bpe_vocab}, {"merges", {"l l", "ll o", "\xc4\xa0 w"}},
                                 {"unk_token", "<|endoftext|>"}}},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                      {"added_tokens", {{{"id", 0}, {"content", "<|endoftext|>"}, {"special", true}}}}})
          .dump());
  put(dir + "/tokenizer_json/bpe_split.json",  // Llama-3's Split and ignore_merges, Qwen2's NFC
      nlohmann::json(
          {{"model", {{"type", "BPE"}, {"vocab", bpe_vocab}, {"merges", {"l l", "ll o"}}, {"ignore_merges", true}}},
           {"normalizer", {{"type", "NFC"}}},
           {"pre_tokenizer",
            {{"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"Regex", bpe_split_regex(BpeSplit::llama3)}}}, {"behavior", "Isolated"},
                {"invert", false}},
               {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}}})
          .dump());
  nlohmann::json spm_vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"\xe2\x96\x81", 3}, {"a", 4}, {"b", 5},
                              {"ab", 6}, {"\xe2\x96\x81" "ab", 7}};
  for (int b : {0x0A, 0x20, 0x21, 0xC3, 0xA9}) spm_vocab[fmt::format("<0x{:02X}>", b)] = spm_vocab.size();
  put(dir + "/tokenizer_json/spm.json",
      nlohmann::json({{"model", {{"type", "BPE"}, {"byte_fallback", true}, {"vocab", spm_vocab},
                                 {"merges", {"a b", "\xe2\x96\x81 ab"}}}},
                      {"added_tokens", {{{"id", 1}, {"content", "<s>"}, {"special", true}}}}})
          .dump());
  nlohmann::json wp_vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2}, {"[SEP]", 3}, {"hello", 4}, {"world", 5},
                             {"##s", 6}, {",", 7}, {"!", 8}, {"un", 9}, {"##aff", 10}, {"##able", 11}};
  put(dir + "/tokenizer_json/wordpiece.json",
      nlohmann::json({{"model", {{"type", "WordPiece"}, {"vocab", wp_vocab}, {"unk_token", "[UNK]"}}},
                      {"normalizer", {{"type", "BertNormalizer"}, {"lowercase", true}}}})
          .dump());
  // vocab.txt
  put(dir + "/vocab_txt/bert.txt", read_text_file(kFixtures + "bert/vocab.txt"));
  // plan.json: W8A8 per tensor, per-token activations, HQQ-style groups, on the tiny model.
  CalibData cd;  // the plan model has no tokenizer: token batches
  for (int i = 0; i < 4; i++) {
    Batch b;
    b.B = 1, b.T = 8;
    for (int t = 0; t < 8; t++) b.tokens.push_back((i * 7 + t * 5) % 32);
    cd.batches.push_back(b);
  }
  for (auto [name, recipe] : {std::pair{"w8a8", "w8a8-rtn"}, {"token", "w8a8-smoothquant"}, {"w4g16", "w4a16-g16-rtn"}}) {
    Model pm = plan_model();
    QuantPlan plan;
    PassContext ctx(pm, plan, cd);
    run_recipe(parse_recipe(recipe), ctx);
    put(dir + "/plan_json/" + name + ".json", plan.to_json(true).dump());
  }
  // recipe JSON: built-in recipes written back as files.
  for (const char* name : {"w8a8-rtn", "w6a6-outliertune", "w4-hqq-g64", "w4-kurtboost", "w4a8-repquant"}) {
    Recipe r = parse_recipe(name);
    nlohmann::json passes = nlohmann::json::array();
    for (auto& [p, params] : r.steps) {
      nlohmann::json step = params;
      step["pass"] = p->name;
      passes.push_back(step);
    }
    put(dir + "/recipe/" + name + ".json", nlohmann::json({{"name", name}, {"passes", passes}}).dump());
  }
  put(dir + "/recipe/rules.json",
      nlohmann::json({{"name", "rules"},
                      {"passes", {{{"recipe", "w4a16-g32-rtn"}}}},
                      {"rules", {{{"match", "blk\\.[0-3]\\.ffn_down"}, {"bits", 8}, {"group", 32}},
                                 {{"match", "attn_v"}, {"bits", 6}, {"scheme", "sym"}}}}})
          .dump());
  put(dir + "/recipe/gguf-rules.json",
      nlohmann::json({{"name", "gguf-rules"},
                      {"passes", {{{"recipe", "gguf-Q4_K"}}}},
                      {"rules", {{{"match", "ffn_down"}, {"type", "q6_K"}}}}})
          .dump());
  // llama2.c: u32 checkpoint length, checkpoint, tokenizer (fuzz_llama2c.cpp).
  {
    Model lm = random_model(llama_config(8, 1, 2, 2, 16, 16, 8), 2);
    lm.tok = small_tokenizer();
    int32_t h[7] = {8, 16, 1, 2, 2, -16, 8};  // negative vocab: an untied head follows
    std::string ckpt((const char*)h, sizeof(h));
    Block& b = lm.blocks[0];
    for (const Tensor* t : {&lm.tok_embd, &b.attn_norm.g, &b.q.w, &b.k.w, &b.v.w, &b.o.w, &b.mlp_norm.g, &b.gate.w,
                            &b.down.w, &b.up.w, &lm.final_norm.g})
      ckpt += f32_bytes(*t);
    ckpt += std::string((size_t)8 * 4 * 4, '\0');  // the unused RoPE tables: max_seq × head_dim floats
    ckpt += f32_bytes(lm.head.w);
    std::string tok;
    uint32_t max_len = 0;
    for (auto& p : lm.tok.pieces) max_len = std::max<uint32_t>(max_len, p.size());
    tok.append((const char*)&max_len, 4);
    for (size_t i = 0; i < lm.tok.pieces.size(); i++) {
      float score = -(float)i;
      int32_t len = (int32_t)lm.tok.pieces[i].size();
      tok.append((const char*)&score, 4).append((const char*)&len, 4).append(lm.tok.pieces[i]);
    }
    uint32_t n = (uint32_t)ckpt.size();
    put(dir + "/llama2c/tiny.bin", std::string((const char*)&n, 4) + ckpt + tok);
  }
  // Images: the reader byte and the slice byte (fuzz_idx.cpp), then the file.
  std::string pixels;
  for (int i = 0; i < 2 * 8 * 8; i++) pixels += (char)(i * 7);
  put(dir + "/idx/images.idx", std::string("\x02\x09", 2) + test::idx_bytes(3, {2, 8, 8}, pixels));
  put(dir + "/idx/labels.idx", std::string("\x00\x00", 2) + test::idx_bytes(1, {4}, std::string("\x01\x02\x03\x04", 4)));
  put(dir + "/idx/image.pgm", std::string("\x03\x00", 2) + "P5\n# tquant\n8 8\n255\n" + pixels.substr(0, 64));
  put(dir + "/idx/image.ppm", std::string("\x03\x00", 2) + "P6 4 4 255\n" + pixels.substr(0, 48));
  // Data specs and their files (fuzz_data.cpp).
  put(dir + "/data/lines.txt", "FILE?from=0.25&to=0.75&limit=2\nthe first line\nthe second line\nthird\n\nfourth\n");
  std::string text;
  for (int i = 0; i < 8; i++) text += "a line of text number " + std::to_string(i) + " for the seeds\n";
  put(dir + "/data/chunks.txt", "text:FILE?protocol=chunks&ctx=8&offset=1\n" + text);
  put(dir + "/data/sst2.txt", "sst2:FILE?offset=1&limit=1\nsentence\tlabel\na fine film \t1\nbleak \t0\n");
  // Importance matrices (fuzz_imatrix.cpp): llama.cpp's GGUF form, from a calibration of the tiny
  // model, and the older .dat form.
  {
    Model m = plan_model();
    CalibData cd;
    cd.batches.push_back({1, 6, {3, 9, 14, 2, 27, 5}, {}, {}, {}});
    Imatrix im = collect_imatrix(m, cd, "seed.txt");
    for (auto it = im.entries.begin(); it != im.entries.end();)  // two entries keep the seed small
      it = it->first == "blk.0.attn_q.weight" || it->first == "blk.0.ffn_down.weight" ? std::next(it) : im.entries.erase(it);
    make_dirs(dir + "/imatrix");
    write_imatrix(dir + "/imatrix/calib.gguf", im);
    std::string dat;
    auto i32 = [&](int32_t v) { dat.append((const char*)&v, 4); };
    i32(1);
    i32(19);
    dat += "blk.0.attn_q.weight";
    i32(3);
    i32(4);
    for (float v : {0.5f, 1.0f, 1.5f, 2.0f}) dat.append((const char*)&v, 4);
    i32(3);
    i32(4);
    dat += "c.tx";
    put(dir + "/imatrix/legacy.dat", dat);
  }
}

TEST(FuzzSeeds, Write) {
  test::TempDir tmp;
  const char* env = std::getenv("TQ_FUZZ_SEEDS");
  write_seeds(env ? env : tmp.path);
  EXPECT_EQ(load_model((env ? std::string(env) : tmp.path) + "/gguf/tiny.gguf").cfg.dim, 8);
}

// Every committed seed parses (the way its fuzz target reads it).
TEST(FuzzSeeds, CommittedSeedsParse) {
  const std::string corpus = std::string(TQ_SOURCE_DIR) + "/fuzz/corpus";
  ASSERT_TRUE(is_directory(corpus));
  test::TempDir tmp;
  auto tail = [](const std::string& path, size_t skip) { return read_text_file(path).substr(skip); };
  int seeds = 0;
  for (auto& target : fs::directory_iterator(corpus))
    for (auto& e : fs::directory_iterator(target.path())) {
      const std::string kind = target.path().filename().string(), path = e.path().string();
      SCOPED_TRACE(path);
      seeds++;
      if (kind == "gguf") {
        EXPECT_NO_THROW(model_from_gguf(read_gguf(path)));
      } else if (kind == "safetensors") {
        EXPECT_FALSE(read_safetensors(path).tensors.empty());
      } else if (kind == "hf_config") {
        const std::string fam[] = {"opt", "gpt2", "bert", "vit"}, bytes = read_text_file(path);
        const std::string dir = tmp.file(e.path().stem().string());
        fs::copy(kFixtures + fam[(uint8_t)bytes[0] % 4], dir);
        std::ofstream(dir + "/config.json", std::ios::trunc) << bytes.substr(1);
        EXPECT_NO_THROW(load_hf_model(dir));
      } else if (kind == "tokenizer_json" || kind == "vocab_txt") {
        const std::string dir = tmp.file(kind + "-" + e.path().stem().string());
        make_dirs(dir);
        fs::copy(path, dir + (kind == "vocab_txt" ? "/vocab.txt" : "/tokenizer.json"));
        EXPECT_FALSE(load_hf_tokenizer(dir, nlohmann::json::object()).empty());
      } else if (kind == "plan_json") {
        nlohmann::json doc = read_json_file(path);
        QuantPlan plan = QuantPlan::from_json(JsonAt(doc, path));
        EXPECT_NO_THROW(check_plan_sites(plan, plan_model().cfg, path));
        EXPECT_NO_THROW(simulate_weights(plan_model(), plan));
      } else if (kind == "recipe") {
        EXPECT_NO_THROW(recipe_from_json(read_json_file(path), path));
      } else if (kind == "llama2c") {
        std::string bytes = read_text_file(path);
        uint32_t n;
        std::memcpy(&n, bytes.data(), 4);
        std::ofstream(tmp.file("m.bin"), std::ios::binary) << bytes.substr(4, n);
        std::ofstream(tmp.file("tok.bin"), std::ios::binary) << bytes.substr(4 + n);
        EXPECT_EQ(load_llama2c_model(tmp.file("m.bin"), tmp.file("tok.bin")).cfg.dim, 8);
      } else if (kind == "idx") {
        std::string bytes = read_text_file(path);
        std::ofstream(tmp.file("img"), std::ios::binary) << bytes.substr(2);
        if (bytes[0] % 4 == 3) {
          EXPECT_GT(read_pnm(tmp.file("img")).image_size(), 0);
        } else {
          EXPECT_FALSE(read_idx(tmp.file("img"), bytes[0] % 4 + 1, {}).values.empty());
        }
      } else if (kind == "imatrix") {
        EXPECT_FALSE(read_imatrix(path).entries.empty());
      } else if (kind == "data") {
        std::string bytes = read_text_file(path);
        size_t nl = bytes.find('\n');
        DataSpec spec = parse_data_spec(bytes.substr(0, nl));
        std::ofstream(tmp.file("data"), std::ios::binary) << bytes.substr(nl + 1);
        spec.path = tmp.file("data");
        if (spec.kind == "sst2") {
          EXPECT_FALSE(read_sst2(spec.path, spec).empty());
        } else {
          EXPECT_FALSE(text_sequences(byte_tokenizer(300), spec).empty());
        }
      } else {
        ADD_FAILURE() << "no fuzz target reads " << kind;
      }
    }
  EXPECT_GE(seeds, 25);
}

}  // namespace
}  // namespace tq
