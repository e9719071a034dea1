// Calibration provenance (issue 19 item 5): plan.json and the quantize report name the
// calibration data (spec, path, slice, bytes, sha256), and quantize warns when the --calib
// and --eval slices of one file overlap.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "core/mmap.h"
#include "core/sha256.h"
#include "export/gguf_writer.h"
#include "nn/random_model.h"
#include "small_inputs.h"
#include "test_util.h"

namespace tq {

namespace {

struct Fixture : test::CliModel {
  Fixture() : CliModel(llama_config(32, 2, 4, 2, 48, 300, 64)) {}
  test::CliResult quantize(const std::string& out, const std::string& extra) const {
    return test::run_cli("quantize " + model + " --recipe w8a8-rtn --threads 2 -o " + d.file(out) + " " + extra);
  }
  nlohmann::json plan_note(const std::string& out) const {
    return nlohmann::json::parse(read_text_file(d.file(out) + "/plan.json"))["notes"]["calibration"];
  }
};

// The note names the file as it is: its size and hash, computed here.
void expect_names_file(const nlohmann::json& note, const std::string& path, int64_t offset, int64_t limit) {
  const std::string bytes = read_text_file(path);
  EXPECT_EQ(note["path"], path);
  EXPECT_EQ(note["kind"], "text");
  EXPECT_EQ(note["bytes"], (int64_t)bytes.size());
  EXPECT_EQ(note["sha256"], sha256_hex(bytes));
  EXPECT_EQ(note["slice"]["offset"], offset);
  EXPECT_EQ(note["slice"]["limit"], limit);
  EXPECT_EQ(note["slice"]["from"], 0.0);
  EXPECT_EQ(note["slice"]["protocol"], "lines");
}

}  // namespace

TEST(Provenance, OverlappingSlicesWarnInStderrPlanAndReport) {
  Fixture f;
  auto r = f.quantize("a", "--calib '" + f.text + "?limit=12' --eval '" + f.text + "?offset=8&limit=8' --report " +
                               f.d.file("rep"));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string want = "overlap: 4 of the 60 sequences of " + f.text + " (calibration [0, 12), evaluation [8, 16))";
  EXPECT_NE(r.err.find("quantize: warning: the calibration and evaluation data " + want), std::string::npos) << r.err;
  nlohmann::json note = f.plan_note("a");
  expect_names_file(note, f.text, 0, 12);
  EXPECT_EQ(note["batches"], 12);
  EXPECT_EQ(note["spec"], f.text + "?limit=12");
  EXPECT_NE(note.value("overlaps_eval", std::string()).find(want), std::string::npos) << note.dump();

  nlohmann::json rep = nlohmann::json::parse(read_text_file(f.d.file("rep") + "/report.json"));
  EXPECT_EQ(rep["calibration"]["sha256"], note["sha256"]);
  expect_names_file(rep["evaluation"], f.text, 8, 8);
  ASSERT_EQ(rep["warnings"].size(), 1u);
  EXPECT_NE(rep["warnings"][0].get<std::string>().find(want), std::string::npos);
  const std::string md = read_text_file(f.d.file("rep") + "/report.md");
  EXPECT_NE(md.find("sha256 " + note["sha256"].get<std::string>()), std::string::npos) << md;
  EXPECT_NE(md.find("Warning: the calibration and evaluation data overlap"), std::string::npos) << md;

  // The same bytes under another name are the same data.
  std::filesystem::copy_file(f.text, f.d.file("copy.txt"));
  r = f.quantize("b", "--calib '" + f.text + "?limit=12' --eval '" + f.d.file("copy.txt") + "?offset=11' --json " +
                          f.d.file("b.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("overlap: 1 of the 60 sequences"), std::string::npos) << r.err;
  EXPECT_EQ(nlohmann::json::parse(read_text_file(f.d.file("b.json")))["warnings"].size(), 1u);

  // Different units (lines against windows of tokens): compared as fractions of the file.
  r = f.quantize("c", "--calib '" + f.text + "?from=0.5' --eval '" + f.text + "?protocol=chunks&ctx=16&from=0.75'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("overlap: about 2"), std::string::npos) << r.err;  // 25 % of the file
}

TEST(Provenance, DisjointSlicesDoNotWarn) {
  Fixture f;
  auto r = f.quantize("a", "--calib '" + f.text + "?limit=12' --eval '" + f.text + "?offset=12&limit=8' --json " +
                               f.d.file("a.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("overlap"), std::string::npos) << r.err;
  nlohmann::json note = f.plan_note("a");
  expect_names_file(note, f.text, 0, 12);
  EXPECT_FALSE(note.contains("overlaps_eval"));
  nlohmann::json j = nlohmann::json::parse(read_text_file(f.d.file("a.json")));
  EXPECT_TRUE(j["warnings"].empty());
  EXPECT_EQ(j["calibration"]["sha256"], note["sha256"]);
  EXPECT_EQ(j["evaluation"]["slice"]["offset"], 12);

  // Another file: no warning however the slices lie.
  std::ofstream(f.d.file("other.txt")) << "a different text\nof two lines\n";
  r = f.quantize("b", "--calib '" + f.text + "?limit=12' --eval " + f.d.file("other.txt"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("overlap"), std::string::npos) << r.err;
}

TEST(Provenance, BlockSequentialPlanRecordsTheCalibration) {
  Fixture f;
  auto r = f.quantize("a", "--calib '" + f.text + "?offset=3&limit=10'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("block-sequential"), std::string::npos) << r.err;
  nlohmann::json note = f.plan_note("a");
  expect_names_file(note, f.text, 3, 10);
  EXPECT_EQ(note["batches"], 10);
  // diagnose's JSON names its data too.
  r = test::run_cli("diagnose " + f.model + " --calib '" + f.text + "?limit=4' --json " + f.d.file("d.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  expect_names_file(nlohmann::json::parse(read_text_file(f.d.file("d.json")))["calibration"], f.text, 0, 4);
  // Without --calib the plan says so: null.
  r = test::run_cli("quantize " + f.model + " --recipe w4a16-g64-rtn -o " + f.d.file("b"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto plan = nlohmann::json::parse(read_text_file(f.d.file("b") + "/plan.json"));
  ASSERT_TRUE(plan["notes"].contains("calibration"));
  EXPECT_TRUE(plan["notes"]["calibration"].is_null());
}

}  // namespace tq
