// The core helpers that hostile input goes through: parallel loops that
// rethrow, checked numbers and sizes, depth-limited JSON read by key path,
// and files that are refused before they are read.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <functional>

#include "core/checked.h"
#include "core/error.h"
#include "core/json.h"
#include "core/mmap.h"
#include "core/parallel.h"
#include "core/threads.h"
#include "nn/perplexity.h"
#include "io/safetensors.h"
#include "nn/random_model.h"
#include "quant/hqq.h"
#include "quant/observer.h"
#include "quant/plan.h"
#include "test_util.h"

namespace tq {
namespace {

// The message and exit code of the tq::Error f throws ("" when it throws none).
std::pair<std::string, int> error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return {e.what(), e.exit_code};
  }
  return {"", 0};
}

TEST(ParallelFor, RethrowsTheErrorOfTheLowestIndexWhateverTheSchedule) {
  for (int threads : {1, 2, 4, 7}) {
    set_threads(threads);
    for (int rep = 0; rep < 20; rep++) {
      auto [msg, code] = error_of([] {
        parallel_for(1000, [](int64_t i) {
          if (i == 901 || i == 300 || i == 700) bad_input("failed at {}", i);
        });
      });
      EXPECT_EQ(msg, "failed at 300");
      EXPECT_EQ(code, 2);
    }
  }
  set_threads(0);
}

TEST(ParallelFor, RunsEveryIndexOnceWithItsOwnThreadState) {
  set_threads(4);
  std::vector<std::atomic<int>> seen(5000);
  std::atomic<int> states{0};
  parallel_for_with(
      5000, [&] { return states.fetch_add(1) + 1; },
      [&](int& state, int64_t i) {
        EXPECT_GT(state, 0);
        seen[i]++;
      },
      16);
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
  EXPECT_LE(states.load(), 4);
  auto [msg, code] = error_of([] {
    parallel_for_with(100, [] { return 0; }, [](int&, int64_t i) {
      if (i >= 40) run_failed("state loop failed at {}", i);
    });
  });
  EXPECT_EQ(msg, "state loop failed at 40");
  EXPECT_EQ(code, 1);
  set_threads(0);
}

// A hook that fails on sequences of odd length: eval_lm scores sequences in parallel.
struct OddLengthFails : Hooks {
  void forward(Site site, int layer, float* x, int rows, int cols) override {
    if (site == Site::qkv_in && rows % 2) bad_input("a sequence of {} tokens", rows);
  }
};

TEST(ParallelFor, ErrorsInsideEvalReachTheCallerTheSameForAnyThreadCount) {
  Model m = random_model(llama_config(16, 1, 2, 2, 32, 300, 64), 1);
  std::vector<TextSeq> seqs;
  for (int n : {4, 6, 9, 12, 7, 5}) seqs.push_back({std::vector<int32_t>(n, 7), 0});
  for (int threads : {1, 3}) {
    set_threads(threads);
    OddLengthFails hook;
    EXPECT_EQ(error_of([&] { eval_lm(m, seqs, hook); }).first, "a sequence of 9 tokens");
  }
  set_threads(0);
}

TEST(ParallelFor, HqqOfAMatrixHoldingNanIsBadInput) {
  Tensor w({64, 1024}, 0.5f);  // large enough for the parallel path
  w.data[40000] = NAN;
  w.data[70] = INFINITY;
  auto [msg, code] = error_of([&] { hqq_fit(w, 4, 64); });
  EXPECT_EQ(msg, "cannot quantize a tensor holding inf");  // row 0 comes first
  EXPECT_EQ(code, 2);
}

TEST(Checked, IntegersAreWholeAndInRange) {
  EXPECT_EQ(parse_int("12", 0, 100, "n"), 12);
  EXPECT_EQ(parse_int("ff", 0, 255, "byte", 16), 255);
  EXPECT_EQ(parse_int("-9", -10, 10, "n"), -9);
  for (const char* bad : {"", " 1", "1 ", "+1", "1e3", "0x10", "12a", "x"})
    EXPECT_NE(error_of([&] { parse_int(bad, 0, 100, "layer of blk.x.q"); }).first.find("is not an integer"),
              std::string::npos)
        << bad;
  EXPECT_EQ(error_of([] { parse_int("-9", 0, 4, "site 'blk.-9.qkv_in' layer"); }).first,
            "site 'blk.-9.qkv_in' layer: -9 is out of range [0, 4]");
  EXPECT_EQ(error_of([] { parse_int("99999999999999999999", 0, 4, "n"); }).second, 2);
  EXPECT_NE(error_of([] { parse_int("zz", 0, 255, "hex", 16); }).first.find("hexadecimal"), std::string::npos);
}

TEST(Checked, NumbersAreFiniteAndInRange) {
  EXPECT_DOUBLE_EQ(parse_number("0.9", 0, 1, "from"), 0.9);
  EXPECT_DOUBLE_EQ(parse_number("1e-3", 0, 1, "from"), 1e-3);
  for (const char* bad : {"nan", "inf", "-inf", "1e999", "2", "-0.5"})
    EXPECT_EQ(error_of([&] { parse_number(bad, 0, 1, "from"); }).second, 2) << bad;
  EXPECT_EQ(error_of([] { parse_number("0.5x", 0, 1, "from"); }).first, "from: '0.5x' is not a number");
}

TEST(Checked, SizesDoNotWrap) {
  EXPECT_EQ(to_int(64, "dim"), 64);
  EXPECT_EQ(error_of([] { to_int((int64_t(1) << 32) + 1, "GGUF llama.block_count"); }).first,
            "GGUF llama.block_count = 4294967297 does not fit in 32 bits");
  EXPECT_EQ(mul_size(int64_t(1) << 31, 4, "n"), int64_t(1) << 33);
  EXPECT_EQ(error_of([] { mul_size(int64_t(1) << 40, int64_t(1) << 30, "n"); }).second, 2);
  EXPECT_EQ(error_of([] { add_size(INT64_MAX, 1, "n"); }).second, 2);
  // n_heads × head_dim that wraps to dim in 32 bits is refused in 64.
  Config c = llama_config(16, 1, 4, 4, 32, 300, 32);
  c.head_dim = (1 << 30) + 4;
  EXPECT_EQ(error_of([&] { validate_config(c, INT64_MAX); }).second, 2);
}

TEST(Json, DepthIsLimitedWhileParsing) {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(parse_json(nested(kMaxJsonDepth), "ok.json"));
  EXPECT_NO_THROW(parse_json(std::string(kMaxJsonDepth, '[') + "1" + std::string(kMaxJsonDepth, ']'), "ok.json"));
  EXPECT_EQ(error_of([&] { parse_json(nested(kMaxJsonDepth + 1), "deep.json"); }).first,
            "deep.json: JSON is nested deeper than 64 levels");
  EXPECT_EQ(error_of([&] { parse_json(nested(1000000), "deep.json"); }).second, 2);
  EXPECT_NE(error_of([] { parse_json("{\"a\": ", "cut.json"); }).first.find("cut.json: not valid JSON"),
            std::string::npos);
}

TEST(Json, ErrorsNameTheSourceAndTheKeyPath) {
  nlohmann::json j = nlohmann::json::parse(R"({"sites": {"blk.0.q": {"scale": ["x"], "bits": 99}}, "n": 3})");
  JsonAt at(j, "plan.json");
  EXPECT_EQ(error_of([&] { at["sites"]["blk.0.q"]["scale"].floats(); }).first,
            "plan.json: sites.\"blk.0.q\".scale[0]: must be a number, got \"x\"");
  EXPECT_EQ(error_of([&] { at["sites"]["blk.0.q"]["bits"].integer(0, 32); }).first,
            "plan.json: sites.\"blk.0.q\".bits: 99 is out of range [0, 32]");
  EXPECT_EQ(error_of([&] { at["sites"]["blk.0.q"]["gran"]; }).first, "plan.json: sites.\"blk.0.q\".gran: is missing");
  EXPECT_EQ(error_of([&] { at["n"].string(); }).first, "plan.json: n: must be a string, got 3");
  EXPECT_EQ(error_of([&] { at["n"]["x"]; }).first, "plan.json: n: must be an object, got 3");
  EXPECT_EQ(at.integer("absent", 0, 9, 5), 5);
  EXPECT_EQ(at.integer("n", 0, 9, 5), 3);
}

TEST(Files, OnlyRegularFilesAreRead) {
  test::TempDir d;
  const std::string fifo = d.file("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);  // opening it for reading must not wait for a writer
  EXPECT_EQ(error_of([&] { read_text_file(fifo); }).first, fifo + " is not a regular file");
  EXPECT_EQ(error_of([&] { MappedFile f(fifo); }).first, fifo + " is not a regular file");
  EXPECT_EQ(error_of([] { read_text_file("/dev/zero"); }).first, "/dev/zero is not a regular file");
  EXPECT_EQ(error_of([&] { read_text_file(d.path); }).second, 2);
  EXPECT_EQ(error_of([&] { read_text_file(d.file("absent")); }).second, 2);
}

TEST(Plans, SiteKeysAreCheckedAgainstTheModel) {
  EXPECT_EQ(parse_site_key("blk.1.qkv_in", 2), std::make_pair(Site::qkv_in, 1));
  EXPECT_EQ(parse_site_key("head_in", 2), std::make_pair(Site::head_in, -1));
  Config c = llama_config(64, 2, 4, 2, 96, 300, 64);
  for (const char* bad : {"blk.-9.qkv_in", "blk.-1000000.qkv_in", "blk.2.qkv_in", "blk.x.q", "blk.0", "blk.0.head_in",
                          "qkv_in", "blk.99999999999.q", "blk.0.nope"}) {
    EXPECT_FALSE(parse_site_key(bad, 2).has_value()) << bad;
    QuantPlan plan;
    plan.sites[bad] = QuantSpec{};
    auto [msg, code] = error_of([&] { check_plan_sites(plan, c, "plan.json"); });
    EXPECT_EQ(code, 2) << bad;
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
  }
}

TEST(Plans, SpecsAreCheckedWhenRead) {
  auto read = [](const char* text) {
    nlohmann::json j = nlohmann::json::parse(text);
    return error_of([&] { spec_from_json(JsonAt(j, "plan.json")); }).first;
  };
  EXPECT_EQ(read(R"({"bits": 8, "scheme": "sym", "gran": "tensor", "scale": [0.5]})"), "");
  EXPECT_NE(read(R"({"bits": 8, "scheme": "sym", "gran": "tensor", "scale": [0]})").find("positive"), std::string::npos);
  EXPECT_NE(read(R"({"bits": 8, "scheme": "asym", "gran": "tensor", "scale": [0.5]})").find("zero point"),
            std::string::npos);
  // Found by fuzz_plan_json: a symmetric per-row weight with a short zero list overran it when the
  // runtime sliced the quantizer by rows.
  EXPECT_EQ(read(R"({"bits": 8, "scheme": "sym", "gran": "row", "scale": [0.5, 0.25], "zero": [1]})"),
            "plan.json: zero: has 1 zero points for 2 steps");
  EXPECT_NE(read(R"({"bits": 8, "scheme": "sym", "gran": "tensor", "pre_inv": [1, 2], "pre_shift": [1]})")
                .find("pre_shift"), std::string::npos);
  EXPECT_NE(read(R"({"bits": 12, "scheme": "sym", "gran": "tensor"})").find("bits"), std::string::npos);
  EXPECT_NE(read(R"({"bits": 8, "scheme": "sym", "gran": "col", "dynamic": true})").find("dynamic"), std::string::npos);
  EXPECT_NE(read(R"({"bits": 8, "scheme": "wild", "gran": "tensor"})").find("plan.json: unknown quantizer scheme"),
            std::string::npos);
}

TEST(Memory, AForwardThatCannotFitIsRefusedBeforeAllocating) {
  Config c = llama_config(32, 2, 4, 2, 64, 300, 1 << 20);
  EXPECT_GT(forward_bytes(c, 1, 300000, false), int64_t(1) << 40);  // attention over 300K tokens: over a TB
  auto [msg, code] = error_of([&] { check_forward_memory(c, 1, 300000, false, 1); });
  EXPECT_EQ(code, 2);
  EXPECT_NE(msg.find("GiB"), std::string::npos);
  EXPECT_NO_THROW(check_forward_memory(c, 1, 512, false, 4));
}

TEST(Safetensors, TensorsOfNoBytesOverlapNothing) {
  // An empty tensor at an offset inside another's bytes: not an overlap.
  std::string header = R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                       R"( "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]}})";
  while (header.size() % 8) header += ' ';
  uint64_t n = header.size();
  std::string bytes = std::string((const char*)&n, 8) + header + std::string(16, '\0');
  auto f = parse_safetensors({(const uint8_t*)bytes.data(), bytes.size()});
  EXPECT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.find("empty")->numel(), 0);
}

}  // namespace
}  // namespace tq
