// Block-sequential quantization (passes/pipeline.h): for a block-local recipe it gives
// what the whole-model run gives; a killed run resumes from its last finished block to
// the same bits; a checkpoint of another run is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/mmap.h"
#include "export/gguf_export.h"
#include "export/gguf_writer.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq::test {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  TempDir d;
  std::string model, text;
  Fixture() {
    Model m = random_model(llama_config(32, 3, 4, 2, 48, 300, 64), 5, 0.2f);
    model = d.file("m.gguf");
    write_gguf_f32(m, model);
    text = write_sample_text(d);
  }
  CliResult quantize(const std::string& recipe, const std::string& out, const std::string& extra = "") const {
    return run_cli("quantize " + model + " --recipe " + recipe + " --calib '" + text + "?limit=12' --threads 2 -o " +
                   d.file(out) + " " + extra);
  }
};

// The largest difference between the two models' tensors, relative to the tensor's largest value.
double max_rel_diff(Model& a, Model& b) {
  auto ta = named_tensors(a), tb = named_tensors(b);
  EXPECT_EQ(ta.size(), tb.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(ta.size(), tb.size()); i++) {
    EXPECT_EQ(ta[i].name, tb[i].name);
    EXPECT_EQ(ta[i].t->shape, tb[i].t->shape) << ta[i].name;
    if (ta[i].t->shape != tb[i].t->shape) continue;
    double scale = 0, diff = 0;
    for (int64_t k = 0; k < ta[i].t->numel(); k++) {
      scale = std::max(scale, (double)std::fabs(ta[i].t->ptr()[k]));
      diff = std::max(diff, (double)std::fabs(ta[i].t->ptr()[k] - tb[i].t->ptr()[k]));
    }
    worst = std::max(worst, scale > 0 ? diff / scale : diff);
  }
  return worst;
}

// Every file of a block run's output (the shards, their index, config.json, plan.json) by name.
std::map<std::string, std::string> dir_files(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (auto& e : fs::directory_iterator(dir)) files[e.path().filename().string()] = read_text_file(e.path().string());
  return files;
}

nlohmann::json sites_and_weights(const std::string& dir) {
  auto j = nlohmann::json::parse(read_text_file(dir + "/plan.json"));
  return {{"sites", j["sites"]}, {"weights", j["weights"]}, {"passes", j["passes"]}};
}

TEST(Pipeline, BlockRunGivesTheWholeRunsModel) {
  Fixture f;
  // Weight rounding and static activation ranges: the same bits. OutlierTune's folds are
  // exact in real arithmetic; the later blocks see the folded earlier ones, so equal to rounding.
  for (auto [recipe, tol] : {std::pair{"w8a8-rtn", 0.0}, {"w4a16-g64-rtn", 0.0}, {"w4-hqq-g64", 0.0},
                             {"w8a8-outliertune", 1e-4}}) {
    auto block = f.quantize(recipe, "b");
    ASSERT_EQ(block.status, 0) << block.err;
    EXPECT_NE(block.err.find("block-sequential"), std::string::npos) << block.err;
    auto whole = f.quantize(recipe, "w", "--whole");
    ASSERT_EQ(whole.status, 0) << whole.err;
    EXPECT_EQ(whole.err.find("block-sequential"), std::string::npos) << whole.err;
    QuantPlan pb, pw;
    Model mb = load_tquant_dir(f.d.file("b"), &pb), mw = load_tquant_dir(f.d.file("w"), &pw);
    double diff = max_rel_diff(mb, mw);
    EXPECT_LE(diff, tol) << recipe;
    if (tol == 0) {
      EXPECT_EQ(sites_and_weights(f.d.file("b")), sites_and_weights(f.d.file("w"))) << recipe;
    } else {
      ASSERT_EQ(pb.sites.size(), pw.sites.size()) << recipe;
      for (auto& [key, s] : pb.sites) {
        ASSERT_TRUE(pw.sites.count(key)) << key;
        const QuantSpec& t = pw.sites.at(key);
        EXPECT_EQ(s.bits, t.bits) << key;
        ASSERT_EQ(s.scale.size(), t.scale.size()) << key;
        for (size_t i = 0; i < s.scale.size(); i++) EXPECT_NEAR(s.scale[i], t.scale[i], 1e-4 * std::fabs(t.scale[i])) << key;
      }
    }
    EXPECT_FALSE(fs::exists(f.d.file("b.partial")));
  }
}

// Killed after block `block` (the test hook raises SIGKILL once that block's checkpoint is written).
CliResult killed_run(const Fixture& f, const std::string& recipe, const std::string& out, int block) {
  setenv("TQ_TEST_KILL_AFTER_BLOCK", std::to_string(block).c_str(), 1);
  CliResult r = f.quantize(recipe, out);
  unsetenv("TQ_TEST_KILL_AFTER_BLOCK");
  return r;
}

TEST(Pipeline, AKilledRunResumesToTheSameBits) {
  Fixture f;
  for (const char* recipe : {"w8a8-outliertune", "w4a16-g64-rtn"}) {
    fs::remove_all(f.d.file("full"));
    fs::remove_all(f.d.file("q"));
    auto full = f.quantize(recipe, "full");
    ASSERT_EQ(full.status, 0) << full.err;
    auto killed = killed_run(f, recipe, "q", 1);
    EXPECT_NE(killed.status, 0) << recipe;
    EXPECT_FALSE(fs::exists(f.d.file("q"))) << "a killed run wrote its output";
    ASSERT_TRUE(fs::exists(f.d.file("q.partial/checkpoint.json")));
    EXPECT_TRUE(fs::exists(f.d.file("q.partial/blk.1.safetensors")));
    EXPECT_FALSE(fs::exists(f.d.file("q.partial/blk.2.safetensors")));
    auto resumed = f.quantize(recipe, "q");
    ASSERT_EQ(resumed.status, 0) << resumed.err;
    EXPECT_NE(resumed.err.find("resuming from block 2 of 3"), std::string::npos) << resumed.err;
    EXPECT_FALSE(fs::exists(f.d.file("q.partial")));
    EXPECT_EQ(dir_files(f.d.file("q")), dir_files(f.d.file("full"))) << recipe;
  }
}

// Killed after the last block: the resumed run plans only the head, on the streams the checkpoint kept.
TEST(Pipeline, ARunKilledAfterItsLastBlockResumesAtTheHead) {
  Fixture f;
  auto full = f.quantize("w8a8-rtn", "full");  // the head_in site takes a static range from the head's input
  ASSERT_EQ(full.status, 0) << full.err;
  ASSERT_NE(killed_run(f, "w8a8-rtn", "q", 2).status, 0);
  auto resumed = f.quantize("w8a8-rtn", "q");
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming from block 3 of 3"), std::string::npos) << resumed.err;
  EXPECT_EQ(dir_files(f.d.file("q")), dir_files(f.d.file("full")));
}

TEST(Pipeline, ACheckpointOfAnotherRunIsRefused) {
  Fixture f;
  auto killed = killed_run(f, "w8a8-rtn", "q", 0);
  ASSERT_NE(killed.status, 0);
  ASSERT_TRUE(fs::exists(f.d.file("q.partial/checkpoint.json")));
  auto other = f.quantize("w4a16-g64-rtn", "q");
  EXPECT_EQ(other.status, 2) << other.err;
  EXPECT_NE(other.err.find("checkpoint of another run"), std::string::npos) << other.err;
  EXPECT_FALSE(fs::exists(f.d.file("q")));
  EXPECT_TRUE(fs::exists(f.d.file("q.partial/checkpoint.json")));  // left for the run it belongs to
}

// A tquant directory loaded lazily (codes left in the file, decoded row by row) holds the
// values of the plain load, and exports (one tensor in f32 at a time) to the same bytes.
TEST(Pipeline, LazyTquantDirHasThePlainValuesAndExportsTheSameFile) {
  Fixture f;
  for (const char* recipe : {"w8a8-outliertune", "w4a16-g64-rtn", "w4-hqq-g64"}) {
    fs::remove_all(f.d.file("q"));
    ASSERT_EQ(f.quantize(recipe, "q").status, 0);
    QuantPlan plan;
    Model plain = load_tquant_dir(f.d.file("q"), &plan), lazy = load_tquant_dir(f.d.file("q"), nullptr, true);
    int stored = 0;
    for (auto& nt : named_tensors(lazy)) {
      stored += nt.t->stored != nullptr;
      nt.t->load_values();
    }
    EXPECT_GE(stored, 3 * 7 + 1) << recipe;  // every block linear and the embedding
    EXPECT_EQ(max_rel_diff(plain, lazy), 0.0) << recipe;
    if (std::string(recipe) == "w8a8-outliertune") continue;  // its folds add biases, which GGUF's llama lacks
    auto cli = run_cli("export " + f.d.file("q") + " --gguf " + f.d.file("cli.gguf"));
    ASSERT_EQ(cli.status, 0) << cli.err;
    export_gguf(plain, plan, f.d.file("api.gguf"), GgufExportOptions{});
    EXPECT_EQ(read_text_file(f.d.file("cli.gguf")), read_text_file(f.d.file("api.gguf"))) << recipe;
  }
}

// tquant bench's quantize cases: a generated model per size, quantized in a child process,
// each with its time, its peak RSS (that child's) and its throughput against the smallest.
TEST(Pipeline, BenchReportsQuantizeAgainstModelSize) {
  auto r = run_cli("bench --filter quantize --quick -t 1 --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u) << r.out;
  EXPECT_DOUBLE_EQ(j[0]["ratio"].get<double>(), 1.0);
  for (auto& c : j) {
    EXPECT_EQ(c["name"], "quantize");
    EXPECT_GT(c["seconds"].get<double>(), 0) << c.dump();
    EXPECT_GT(c["peak_rss_bytes"].get<int64_t>(), 1 << 20) << c.dump();
    EXPECT_GT(c["ratio"].get<double>(), 0) << c.dump();
  }
  EXPECT_GT(j[1]["model_bytes"].get<int64_t>(), j[0]["model_bytes"].get<int64_t>());
}

}  // namespace
}  // namespace tq::test
