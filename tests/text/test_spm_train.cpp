#include <gtest/gtest.h>

#include <sentencepiece_processor.h>

#include "core/rng.h"
#include "text/dataset.h"
#include "text/spm_train.h"
#include "test_util.h"

namespace tq {
namespace {

std::vector<std::string> synthetic_lines(int n, uint64_t seed) {
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "big", "red", "house",
                         "2024", "naïve", "café", "über", "42"};
  Rng rng(seed);
  std::vector<std::string> lines;
  for (int i = 0; i < n; i++) {
    std::string l;
    int len = 3 + (int)rng.below(10);
    for (int w = 0; w < len; w++) l += (w ? (rng.below(9) ? " " : "  ") : "") + std::string(words[rng.below(18)]);
    lines.push_back(l + ".");
  }
  return lines;
}

// Our encoder on the trained vocabulary gives sentencepiece's own ids.
void expect_same_ids(const std::string& proto, const Tokenizer& tok, const std::vector<std::string>& lines) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(proto).ok());
  int differ = 0;
  for (auto& l : lines) {
    std::vector<int> ref;
    ASSERT_TRUE(sp.Encode(l, &ref).ok());
    auto ours = encode(tok, l, false);
    if (std::vector<int>(ours.begin(), ours.end()) != ref && differ++ < 3) ADD_FAILURE() << "differs on: " << l;
    EXPECT_EQ(decode(tok, encode(tok, l, true)), l);
  }
  EXPECT_EQ(differ, 0);
}

TEST(SpmTrain, BpeWithByteFallbackEncodesLikeSentencepiece) {
  auto lines = synthetic_lines(300, 1);
  std::string proto = train_spm_bpe(lines, 300);
  Tokenizer tok = tokenizer_from_spm(proto);
  ASSERT_EQ(tok.size(), 300);
  EXPECT_EQ(tok.unk, 0);
  EXPECT_EQ(tok.bos, 1);
  EXPECT_EQ(tok.eos, 2);
  EXPECT_EQ(tok.pieces[3 + 'A'], "<0x41>");
  EXPECT_EQ(tok.types[3 + 'A'], tok_byte);
  auto held_out = synthetic_lines(50, 2);
  held_out.push_back("unseen: ĳ ∑ 😀 and   three spaces");
  expect_same_ids(proto, tok, held_out);
  EXPECT_EQ(train_spm_bpe(lines, 300), proto);  // the same vocabulary every time
}

TEST(SpmTrain, TinyStoriesVocabularyEncodesLikeSentencepiece) {
  TQ_REQUIRE_SHARED("data/tinystories/tinystories_valid_head.txt");
  auto lines = read_lines(test::shared("data/tinystories/tinystories_valid_head.txt"));
  std::vector<std::string> train(lines.begin(), lines.begin() + 1000), rest(lines.begin() + 4000, lines.end());
  std::string proto = train_spm_bpe(train, 512);
  expect_same_ids(proto, tokenizer_from_spm(proto), rest);
}

}  // namespace
}  // namespace tq
