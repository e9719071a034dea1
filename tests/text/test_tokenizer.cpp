#include <gtest/gtest.h>

#include "io/load.h"
#include "nn/random_model.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace tq {

// Token ids from llama.cpp's llama-tokenize on the same model (../shared/golden).
TEST(Tokenizer, MatchesLlamaCppOnStories260K) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  for (const char* file : {"models/stories260K/stories260K.gguf", "models/stories260K/stories260K.bin"}) {
    Model m = load_model(test::shared(file));
    EXPECT_EQ(encode(m.tok, "Once upon a time, there was a little girl named Lily.", true),
              (std::vector<int32_t>{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426}))
        << file;
    EXPECT_EQ(encode(m.tok, "Hello w\xc3\xb6rld! 123 \xe2\x98\x83", true),
              (std::vector<int32_t>{1, 346, 306, 414, 263, 198, 185, 420, 341, 443, 410, 475, 479, 472, 410, 229, 155,
                                    134}))
        << file;
  }
}

TEST(Tokenizer, DecodeInvertsEncode) {
  TQ_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  Model m = load_model(test::shared("models/stories260K/stories260K.gguf"));
  for (std::string s : {"Once upon a time", "Hello w\xc3\xb6rld! 123 \xe2\x98\x83", "  two  spaces\nand a line", "x"}) {
    auto ids = encode(m.tok, s, true);
    EXPECT_EQ(decode(m.tok, ids), s);
  }
  EXPECT_EQ(encode(m.tok, "", true), std::vector<int32_t>{1});
}

TEST(Tokenizer, ByteFallbackCoversAnyBytes) {
  Tokenizer t = byte_tokenizer(300);
  std::string s = "a\xff\x00z";
  s.push_back('\x80');
  auto ids = encode(t, s, false);
  // ' ' prefix plus one byte piece per byte.
  ASSERT_EQ(ids.size(), s.size() + 1);
  EXPECT_EQ(decode(t, ids), " " + s);
}

// Found by fuzz_gguf: "<0x-B>" once read as byte 0xFFFFFFF5 (sscanf's %x takes a sign).
// Only "<0x" + two hex digits + ">" is a byte piece; anything else is an ordinary piece.
TEST(Tokenizer, OnlyTwoHexDigitsMakeAByteFallbackPiece) {
  Tokenizer t;
  t.kind = TokKind::spm;
  t.add_space_prefix = false;
  t.pieces = {"<unk>", "<0x-B>", "<0x+1>", "<0x 2>", "<0x41>", "<0x4g>"};
  t.scores.assign(t.pieces.size(), 0.0f);
  t.unk = 0;
  t.finalize();
  EXPECT_EQ(encode(t, "A", false), (std::vector<int32_t>{4}));
  EXPECT_EQ(decode(t, {4}), "A");
  EXPECT_EQ(encode(t, "\xf5", false), (std::vector<int32_t>{0}));  // no byte piece: unknown
  for (int id : {1, 2, 3, 5}) EXPECT_EQ(decode_token(t, -1, id), t.pieces[id]) << t.pieces[id];
}

TEST(Tokenizer, MergesHighestScoreLeftmostFirst) {
  Tokenizer t;
  t.kind = TokKind::spm;
  t.add_space_prefix = false;
  t.pieces = {"<unk>", "a", "b", "ab", "ba", "aba"};
  t.scores = {0, 0, 0, -2, -1, -0.5};
  t.unk = 0;
  t.finalize();
  // "aba": ba (−1) beats ab (−2), then a+ba = aba (−0.5).
  EXPECT_EQ(encode(t, "aba", false), (std::vector<int32_t>{5}));
  // "abab": ba first → a, ba, b → aba, b
  EXPECT_EQ(encode(t, "abab", false), (std::vector<int32_t>{5, 2}));
  // ties go left: with equal scores "aab" → "a", "ab"? no merge a+a; only ab exists
  EXPECT_EQ(encode(t, "aab", false), (std::vector<int32_t>{1, 3}));
}

}  // namespace tq
