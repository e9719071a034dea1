// The hostile-input corpus, class by class (issue 20): each case is a file or
// option made to break a parser, and must end in one "tquant: error:" line
// naming the file (and, for JSON, the key) with exit status 2.
#include <sys/stat.h>

#include <cmath>
#include <fstream>

#include "core/mmap.h"
#include "export/gguf_writer.h"
#include "hostile/hostile_util.h"
#include "nn/random_model.h"

namespace tq::test {
namespace {

// Text the byte-vocabulary models can score.
std::string sample(const TempDir& d) { return write_sample_text(d); }

// Class 1: an error raised inside a parallel loop (tokenizing lines, scoring
// sequences, fitting HQQ groups) must reach the caller as the one-line error.
TEST(Hostile, ErrorsInsideParallelLoops) {
  TempDir d;
  const std::string text = sample(d);
  // Pieces beyond the embedding rows: 400 tokens for 300 rows.
  std::string wide = tiny_gguf(d, "wide.gguf", [](nlohmann::json& meta, auto&) {
    for (int i = 300; i < 400; i++) {
      meta["tokenizer.ggml.tokens"].push_back("tok" + std::to_string(i));
      meta["tokenizer.ggml.scores"].push_back(0.5);
      meta["tokenizer.ggml.token_type"].push_back(1);
    }
    meta["tokenizer.ggml.tokens"][300] = "the";  // reached by merging "th" and "e"
    meta["tokenizer.ggml.tokens"][301] = "th";
  });
  // An SPM vocabulary without byte fallback or unknown token.
  std::string nobytes = tiny_gguf(d, "nobytes.gguf", [](nlohmann::json& meta, auto&) {
    for (int b = 0; b < 256; b++) meta["tokenizer.ggml.tokens"][3 + b] = "piece" + std::to_string(b);
    meta.erase("tokenizer.ggml.unknown_token_id");
  });
  // A BERT vocabulary without [UNK].
  std::string bert = family_copy(d, "bert", "bert-nounk");
  {
    std::string v = read_text_file(bert + "/vocab.txt");
    v.replace(v.find("[UNK]"), 5, "[UNX]");
    write_text(bert + "/vocab.txt", v);
  }
  write_text(d.file("dev.tsv"), "sentence\tlabel\nzyzzyva quux\t1\nthe film\t0\n");
  // A plan site without a scale.
  std::string noscale = tiny_tquant_dir(d, "noscale", [](nlohmann::json& p) { p["sites"]["blk.1.o_in"].erase("scale"); });
  // NaN in a weight of a matrix HQQ fits in parallel (64 x 1024 values).
  std::string nan_big = d.file("nan-big.gguf");
  {
    Model m = random_model(llama_config(64, 1, 4, 4, 1024, 300, 64), 3, 0.1f);
    m.blocks[0].up.w.data[777] = NAN;
    write_gguf_f32(m, nan_big);
  }
  // One line of 300,000 tokens scored with a context that admits it: attention would need terabytes.
  write_text(d.file("long.txt"), std::string(300000, 'a') + "\n");
  std::string model = tiny_gguf(d, "m.gguf");
  expect_all("1 errors inside parallel loops",
             {
                 {"pieces beyond the embedding", "eval " + wide + " --data " + text, {"wide.gguf", "300"}},
                 {"no byte fallback", "eval " + nobytes + " --data " + text, {"byte"}},
                 {"BERT without [UNK]", "eval " + bert + " --data sst2:" + d.file("dev.tsv"), {"[UNK]"}},
                 {"plan site without a scale", "eval " + noscale + " --simulate --data " + text,
                  {"plan.json", "blk.1.o_in"}},
                 {"HQQ of a model holding NaN",
                  "quantize " + nan_big + " --recipe w4-hqq-g64 -o " + d.file("out-hqq"),
                  {"nan-big.gguf", "blk.0.ffn_up.weight", "nan"}},
                 {"eval --ctx 1048576 on a 300K-token line",
                  "eval " + model + " --ctx 1048576 --data " + d.file("long.txt"), {"GiB", "--ctx"}},
             });
  EXPECT_FALSE(file_exists(d.file("out-hqq")) || is_directory(d.file("out-hqq")));
}

// Class 2: JSON nested 10^5 levels deep, in every JSON input.
TEST(Hostile, DeeplyNestedJson) {
  TempDir d;
  const std::string text = sample(d), deep = deep_json(100000);
  // safetensors metadata
  {
    std::string header = "{\"__metadata__\": {\"a\": " + deep + "}}";
    while (header.size() % 8) header += ' ';
    uint64_t n = header.size();
    std::string b((const char*)&n, 8);
    write_text(d.file("deep.safetensors"), b + header);
  }
  std::string gpt2 = family_copy(d, "gpt2", "gpt2-deep");
  {
    std::string tj = read_text_file(gpt2 + "/tokenizer.json");
    size_t pre = tj.find("\"pre_tokenizer\"");
    ASSERT_NE(pre, std::string::npos);
    tj.insert(tj.find('{', pre) + 1, "\"deep\": " + deep + ", ");
    write_text(gpt2 + "/tokenizer.json", tj);
  }
  std::string cfg = family_copy(d, "opt", "opt-deep");
  {
    std::string c = read_text_file(cfg + "/config.json");
    c.insert(c.rfind('}'), ", \"deep\": " + deep);
    write_text(cfg + "/config.json", c);
  }
  std::string plan = tiny_tquant_dir(d, "plan-deep");
  {
    std::string p = read_text_file(plan + "/plan.json");
    size_t notes = p.find("\"notes\"");
    ASSERT_NE(notes, std::string::npos);
    p.insert(p.find('{', notes) + 1, "\"deep\": " + deep + (p[p.find('{', notes) + 1] == '}' ? "" : ", "));
    write_text(plan + "/plan.json", p);
  }
  write_text(d.file("recipe.json"), "{\"passes\": [{\"pass\": \"rtn\", \"calibrator\": " + deep + "}]}");
  write_text(d.file("set.txt"), deep_json(60000));  // one argument holds at most 128 KiB
  std::string model = tiny_gguf(d, "m.gguf");
  expect_all("2 deeply nested JSON",
             {
                 {"safetensors metadata", "inspect " + d.file("deep.safetensors"), {"deep.safetensors", "64 levels"}},
                 {"tokenizer.json", "inspect " + gpt2, {"tokenizer.json", "64 levels"}},
                 {"config.json", "inspect " + cfg, {"config.json", "64 levels"}},
                 {"plan.json", "eval " + plan + " --data " + text, {"plan.json", "64 levels"}},
                 {"recipe file", "quantize " + model + " --recipe " + d.file("recipe.json") + " --calib " + text +
                                     " -o " + d.file("o1"), {"recipe.json", "64 levels"}},
                 {"--set value", "quantize " + model + " --recipe w8a8-rtn --calib " + text + " -o " + d.file("o2") +
                                     " --set \"calibrator=$(cat " + d.file("set.txt") + ")\"", {"--set calibrator", "64 levels"}},
             });
}

// Class 3: reads of null or out-of-range memory.
TEST(Hostile, NullAndOutOfRangeReads) {
  TempDir d;
  const std::string text = sample(d);
  std::string nobos = tiny_gguf(d, "nobos.gguf", [](nlohmann::json& meta, auto&) {
    meta.erase("tokenizer.ggml.bos_token_id");
  });
  auto site = [](const char* key) {
    return [key](nlohmann::json& p) {
      p["sites"][key] = p["sites"]["blk.0.qkv_in"];
    };
  };
  std::string nozero = tiny_tquant_dir(d, "nozero", [](nlohmann::json& p) {
    auto& s = p["sites"]["blk.0.o_in"];
    s["scheme"] = "asym";
    s.erase("zero");
  });
  std::string neg9 = tiny_tquant_dir(d, "neg9", site("blk.-9.qkv_in"));
  std::string neg1m = tiny_tquant_dir(d, "neg1m", site("blk.-1000000.qkv_in"));
  std::string shift = tiny_tquant_dir(d, "shift", [](nlohmann::json& p) {
    auto& s = p["sites"]["blk.0.qkv_in"];
    s["pre_inv"] = std::vector<float>(32, 1.0f);
    s["pre_shift"] = {0.5f};
  });
  // Learned positions, 48 rows: max_seq 78 with pos_offset -30 asks for 48 rows too, then reads row -30.
  std::string offset = tiny_tquant_dir(
      d, "offset", nullptr,
      [](nlohmann::json& c) {
        c["config"]["max_seq"] = 78;
        c["config"]["pos_offset"] = -30;
      },
      [](Config& c) {
        c.pos = PosKind::learned;
        c.max_seq = 48;
      });
  expect_all("3 null and out-of-range reads",
             {
                 {"empty prompt without BOS", "run " + nobos + " -p '' -n 4", {"nobos.gguf", "BOS"}},
                 {"asymmetric site without zero", "eval " + nozero + " --data " + text,
                  {"plan.json", "blk.0.o_in", "zero"}},
                 {"site blk.-9.qkv_in", "eval " + neg9 + " --simulate --data " + text, {"plan.json", "blk.-9.qkv_in"}},
                 {"site blk.-1000000.qkv_in", "eval " + neg1m + " --data " + text,
                  {"plan.json", "blk.-1000000.qkv_in"}},
                 {"too short pre_shift", "eval " + shift + " --simulate --data " + text,
                  {"plan.json", "blk.0.qkv_in", "pre_shift"}},
                 {"pos_offset -30", "eval " + offset + " --data " + text, {"config.json", "offset"}},
             });
}

// Class 4: sizes whose 32-bit products wrap.
TEST(Hostile, ThirtyTwoBitOverflowInShapes) {
  TempDir d;
  const std::string text = sample(d);
  // 4 heads of 2^30 + 4: the product wraps to 16, the hidden size.
  std::string wrap = tiny_hf_llama(d, "llama-wrap", [](nlohmann::json& c) { c["head_dim"] = (1 << 30) + 4; });
  std::string layers = tiny_gguf(d, "layers.gguf", [](nlohmann::json& meta, auto&) {
    meta["llama.block_count"] = (uint64_t(1) << 32) + 1;
  });
  std::string width = tiny_gguf(d, "width.gguf", [](nlohmann::json& meta, auto&) {
    meta["llama.embedding_length"] = (uint64_t(1) << 32) + 32;
  });
  std::string heads = tiny_gguf(d, "heads.gguf", [](nlohmann::json& meta, auto&) {
    meta["llama.attention.head_count"] = (uint64_t(1) << 32) + 4;
  });
  expect_all("4 32-bit overflow in shapes",
             {
                 {"n_heads x head_dim wraps to dim", "eval " + wrap + " --data " + text, {"llama-wrap"}},
                 {"block_count 2^32 + 1", "eval " + layers + " --data " + text, {"layers.gguf", "block_count"}},
                 {"embedding_length 2^32 + 32", "eval " + width + " --data " + text,
                  {"width.gguf", "embedding_length"}},
                 {"head_count 2^32 + 4", "export " + heads + " --gguf " + d.file("x.gguf"), {"heads.gguf", "head_count"}},
             });
  EXPECT_FALSE(file_exists(d.file("x.gguf")));
}

// Class 5: counts and sizes from a file bounded before anything is allocated.
TEST(Hostile, SizesCheckedBeforeAllocating) {
  TempDir d;
  const std::string text = sample(d);
  write_text(d.file("dev.tsv"), "sentence\tlabel\nthe film\t0\n");
  std::string labels = family_copy(d, "bert", "labels", [](nlohmann::json& c) {
    c.erase("id2label");
    c.erase("label2id");
    c["num_labels"] = 1 << 30;
  });
  std::string types = family_copy(d, "bert", "types", [](nlohmann::json& c) { c["type_vocab_size"] = 1 << 30; });
  std::string patch = family_copy(d, "vit", "patch", [](nlohmann::json& c) {
    c["patch_size"] = 16384;
    c["image_size"] = 16384;
  });
  std::string vocab = family_copy(d, "gpt2", "vocab");
  {
    nlohmann::json tj = read_json(vocab + "/tokenizer.json");
    tj["model"]["vocab"]["far"] = (1 << 24) - 1;
    write_json_file(vocab + "/tokenizer.json", tj);
  }
  std::string fifo = d.file("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string model = tiny_gguf(d, "m.gguf");
  expect_all("5 sizes checked before allocating",
             {
                 {"num_labels 2^30", "eval " + labels + " --data sst2:" + d.file("dev.tsv"), {"labels"}},
                 {"type_vocab_size 2^30", "inspect " + types, {"types"}},
                 {"ViT patch_size 16384", "inspect " + patch, {"patch", "patch_size"}},
                 {"tokenizer id 2^24 - 1", "inspect " + vocab, {"tokenizer.json", "model.vocab"}},
                 {"--data /dev/zero", "eval " + model + " --data /dev/zero", {"/dev/zero", "regular"}},
                 {"a FIFO as --data", "eval " + model + " --data " + fifo, {"fifo", "regular"}},
             });
}

// Class 6: numbers out of range are bad input (2), not a failed run (1).
TEST(Hostile, NumbersParsedWithRangeChecks) {
  TempDir d;
  const std::string text = sample(d);
  auto site = [](const char* key) {
    return [key](nlohmann::json& p) { p["sites"][key] = p["sites"]["blk.0.qkv_in"]; };
  };
  std::string word = tiny_tquant_dir(d, "word", site("blk.x.qkv_in"));
  std::string huge = tiny_tquant_dir(d, "huge", site("blk.99999999999.qkv_in"));
  std::string hex = tiny_tquant_dir(d, "hex", nullptr, [](nlohmann::json& c) {
    c["tokenizer"]["pieces"][5] = {{"hex", "zz"}};
  });
  std::string model = tiny_gguf(d, "m.gguf");
  expect_all("6 numbers parsed with range checks",
             {
                 {"site blk.x.qkv_in", "eval " + word + " --data " + text, {"plan.json", "blk.x.qkv_in"}},
                 {"site blk.99999999999.qkv_in", "eval " + huge + " --data " + text,
                  {"plan.json", "blk.99999999999.qkv_in"}},
                 {"recipe w99999999999a8-rtn",
                  "quantize " + model + " --recipe w99999999999a8-rtn --calib " + text + " -o " + d.file("o"),
                  {"w99999999999a8-rtn"}},
                 {"tokenizer hex piece 'zz'", "eval " + hex + " --data " + text, {"config.json", "pieces[5]", "zz"}},
                 {"limit=9223372036854775807", "eval " + model + " --data '" + text + "?limit=9223372036854775807'",
                  {"limit", "9223372036854775807"}},
                 {"offset=-1", "eval " + model + " --data '" + text + "?offset=-1'", {"offset"}},
                 {"--set group=1e999", "quantize " + model + " --recipe w4a16-g64-rtn --calib " + text + " -o " +
                                           d.file("o") + " --set group=1e999", {"group"}},
             });
}

// Class 7: nonsense must not pass as a result.
TEST(Hostile, NonsenseIsRefused) {
  TempDir d;
  const std::string text = sample(d);
  auto meta = [&](const char* name, const char* key, nlohmann::json v) {
    return tiny_gguf(d, name, [=](nlohmann::json& m, auto&) { m[key] = v; });
  };
  std::string eps_nan = meta("eps-nan.gguf", "llama.attention.layer_norm_rms_epsilon", NAN);
  std::string eps_neg = meta("eps-neg.gguf", "llama.attention.layer_norm_rms_epsilon", -1e-5);
  std::string theta0 = meta("theta0.gguf", "llama.rope.freq_base", 0.0);
  std::string ctx0 = meta("ctx0.gguf", "llama.context_length", 0);
  std::string scale0 = tiny_tquant_dir(d, "scale0", [](nlohmann::json& p) { p["sites"]["blk.0.o_in"]["scale"] = {0.0}; });
  auto weight = [&](const char* name, float v) {
    return tiny_gguf(d, name, [=](nlohmann::json&, auto& tensors) {
      for (auto& [n, t] : tensors)
        if (n == "blk.1.ffn_down.weight") t.data[5] = v;
    });
  };
  std::string nan_w = weight("nan-w.gguf", NAN), inf_w = weight("inf-w.gguf", INFINITY);
  std::string bert = family_copy(d, "bert", "bert");
  write_text(d.file("header.tsv"), "sentence\tlabel\n");
  expect_all("7 nonsense refused",
             {
                 {"rms eps NaN", "eval " + eps_nan + " --data " + text, {"eps-nan.gguf", "epsilon"}},
                 {"rms eps negative", "eval " + eps_neg + " --data " + text, {"eps-neg.gguf", "epsilon"}},
                 {"rope freq_base 0", "eval " + theta0 + " --data " + text, {"theta0.gguf", "RoPE"}},
                 {"context_length 0", "eval " + ctx0 + " --data " + text, {"ctx0.gguf", "context length"}},
                 {"plan scale 0", "eval " + scale0 + " --simulate --data " + text,
                  {"plan.json", "blk.0.o_in", "scale[0]", "positive"}},
                 {"SST-2 with only a header", "eval " + bert + " --data sst2:" + d.file("header.tsv"),
                  {"header.tsv", "header"}},
                 {"NaN weight, eval", "eval " + nan_w + " --data " + text, {"nan-w.gguf", "blk.1.ffn_down.weight", "nan"}},
                 {"Inf weight, run", "run " + inf_w + " -p hello -n 4", {"inf-w.gguf", "blk.1.ffn_down.weight", "inf"}},
             });
}

// Class 8: messages name the file and, for JSON, the key path.
TEST(Hostile, MessagesNameTheFileAndTheKey) {
  TempDir d;
  const std::string text = sample(d);
  std::string xscale = tiny_tquant_dir(d, "xscale", [](nlohmann::json& p) { p["sites"]["blk.0.o_in"]["scale"] = {"x"}; });
  std::string noentry = tiny_tquant_dir(d, "noentry", [](nlohmann::json& p) { p["weights"].erase("blk.0.attn_q.weight"); });
  std::string dimstr = tiny_tquant_dir(d, "dimstr", nullptr, [](nlohmann::json& c) { c["config"]["dim"] = "32"; });
  write_text(d.file("r.json"), R"({"passes": [{"pass": "rtn", "w_bits": 8.5}]})");
  // A llama2.c header that asks for more weights than the file holds.
  {
    int32_t h[7] = {64, 128, 4, 4, 4, 300, 64};
    write_text(d.file("short.bin"), std::string((const char*)h, sizeof(h)) + std::string(1000, '\0'));
    write_text(d.file("tok.bin"), std::string(4, '\0'));
  }
  std::string model = tiny_gguf(d, "m.gguf");
  expect_all("8 messages name the file and key",
             {
                 {"plan scale \"x\"", "eval " + xscale + " --data " + text,
                  {"plan.json: sites.\"blk.0.o_in\".scale[0]: must be a number, got \"x\""}},
                 {"missing plan entry", "eval " + noentry + " --data " + text,
                  {"noentry", "blk.0.attn_q.weight", "plan.json has no weight quantizer"}},
                 {"config dim \"32\"", "eval " + dimstr + " --data " + text,
                  {"config.json: config.dim: must be an integer, got \"32\""}},
                 {"w_bits 8.5", "quantize " + model + " --recipe " + d.file("r.json") + " --calib " + text + " -o " +
                                    d.file("o"), {"r.json", "passes[0]", "w_bits", "must be an integer", "8.5"}},
                 {"llama2.c too short", "eval " + d.file("short.bin") + " --tokenizer " + d.file("tok.bin") +
                                            " --data " + text, {"short.bin", "parameters"}},
             });
}

}  // namespace
}  // namespace tq::test
