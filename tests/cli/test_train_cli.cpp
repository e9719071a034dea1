// tquant train, finetune and quanttune end to end on a small generated corpus.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "core/mmap.h"
#include "core/rng.h"
#include "io/load.h"
#include "test_util.h"

namespace tq {
namespace {

// Sentences from a small grammar: enough structure to learn in a few steps.
std::string corpus(int lines) {
  const char* who[] = {"The cat", "A dog", "Tom", "The little bird", "Mia"};
  const char* did[] = {"saw", "liked", "found", "ran to", "played with"};
  const char* what[] = {"the red ball.", "a big tree.", "the sun.", "her friend.", "a small box."};
  Rng rng(1);
  std::string s;
  for (int i = 0; i < lines; i++)
    s += std::string(who[rng.below(5)]) + " " + did[rng.below(5)] + " " + what[rng.below(5)] + "\n";
  return s;
}

const char* kSmall = "--vocab 300 --dim 32 --layers 2 --heads 4 --ctx 32 --batch 4 --threads 2";

TEST(TrainCli, TrainsRepeatsBitForBitAndEvaluates) {
  test::TempDir d;
  std::ofstream(d.file("c.txt")) << corpus(400);
  std::string args = "train --data " + d.file("c.txt") + " " + kSmall + " --steps 60 --lr 1e-2";
  auto a = test::run_cli(args + " -o " + d.file("a.gguf") + " --log " + d.file("a.csv"));
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_NE(a.out.find("held-out PPL"), std::string::npos) << a.out;
  auto b = test::run_cli(args + " -o " + d.file("b.gguf") + " --log " + d.file("b.csv"));
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(read_text_file(d.file("a.gguf")), read_text_file(d.file("b.gguf")));
  auto losses = [](const std::string& csv) {  // the loss column (time differs between runs)
    std::vector<std::string> out;
    std::istringstream in(csv);
    for (std::string line; std::getline(in, line);) out.push_back(line.substr(0, line.rfind(',')));
    return out;
  };
  auto la = losses(read_text_file(d.file("a.csv")));
  EXPECT_EQ(la, losses(read_text_file(d.file("b.csv"))));
  ASSERT_EQ(la.size(), 61u);
  double first = std::stod(la[1].substr(la[1].find(',', la[1].find(',') + 1) + 1));
  double last = std::stod(la[60].substr(la[60].find(',', la[60].find(',') + 1) + 1));
  EXPECT_LT(last, 0.5 * first);

  Model m = load_model(d.file("a.gguf"));  // tokenizer embedded, tied head
  EXPECT_EQ(m.tok.size(), 300);
  EXPECT_TRUE(m.cfg.tied_head);
  EXPECT_EQ(m.cfg.max_seq, 32);
  auto e = test::run_cli("eval " + d.file("a.gguf") + " --data " + d.file("c.txt") + " --offset 360 --ctx 32");
  ASSERT_EQ(e.status, 0) << e.err;
  auto ppl_of = [](const std::string& s, const char* key) { return s.substr(s.find(key) + std::strlen(key), 7); };
  EXPECT_EQ(ppl_of(e.out, "PPL "), ppl_of(a.out, "held-out PPL ")) << e.out << a.out;
}

TEST(TrainCli, ResumedRunMatchesUninterruptedRun) {
  test::TempDir d;
  std::ofstream(d.file("c.txt")) << corpus(400);
  std::string args = "train --data " + d.file("c.txt") + " " + kSmall + " --lr 3e-3";
  ASSERT_EQ(test::run_cli(args + " --steps 24 -o " + d.file("a.gguf")).status, 0);
  // A run that ends after 12 of its 24 steps, then a second process that resumes it.
  auto r = test::run_cli(args + " --steps 24 --checkpoint " + d.file("ck") + " -o " +
                         d.file("b.gguf") + " --stop-after 12");
  ASSERT_EQ(r.status, 0) << r.err;
  r = test::run_cli(args + " --steps 24 --checkpoint " + d.file("ck") + " --resume -o " + d.file("b.gguf"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_text_file(d.file("a.gguf")), read_text_file(d.file("b.gguf")));
}

TEST(TrainCli, FinetuneAndQuanttuneWriteTheirOutputs) {
  test::TempDir d;
  std::ofstream(d.file("c.txt")) << corpus(400);
  ASSERT_EQ(test::run_cli("train --data " + d.file("c.txt") + " " + kSmall + " --steps 20 --lr 3e-3 -o " +
                          d.file("base.gguf"))
                .status,
            0);
  auto f = test::run_cli("finetune " + d.file("base.gguf") + " --data " + d.file("c.txt") +
                         " --offset 200 --steps 5 --batch 4 --ctx 32 --threads 2 -o " + d.file("ft.gguf"));
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_NE(f.out.find("held-out PPL"), std::string::npos);
  EXPECT_TRUE(file_exists(d.file("ft.gguf")));

  auto q = test::run_cli("quanttune " + d.file("base.gguf") + " --data " + d.file("c.txt") +
                         " --offset 200 --steps 6 --guard-every 3 --batch 4 --ctx 32 --lambda 0.1 --threads 2 -o " +
                         d.file("qt.gguf"));
  ASSERT_EQ(q.status, 0) << q.err;
  auto rec = nlohmann::json::parse(read_text_file(d.file("qt.quanttune.json")));
  EXPECT_EQ(rec["k"], 3.0);
  EXPECT_EQ(rec["lambda"], 0.1);
  EXPECT_EQ(rec["sites"].size(), 5u);
  EXPECT_EQ(rec["pool"]["guard"], 20);
  EXPECT_EQ(rec["pool"]["fit"], 180);
  EXPECT_EQ(rec["guard"]["metric"], "ppl");
  EXPECT_GE(rec["guard"]["history"].size(), 1u);
  EXPECT_EQ(rec["sites_before"].size(), 2u * 4 + 1);  // four sites per layer and head_in
  Model m = load_model(d.file("qt.gguf"));
  EXPECT_EQ(m.cfg.n_layers, 2);

  auto bad = test::run_cli("finetune " + d.file("base.gguf") + " --data mnist:" + d.path + " -o " + d.file("x.gguf"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.err.find("not an image classifier"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace tq
