// Byte-level BPE (GPT-2, OPT) and WordPiece (BERT).
#include <gtest/gtest.h>

#include "io/load.h"
#include "test_util.h"
#include "text/tokenizer.h"

namespace tq {

namespace {

std::vector<std::string> gpt2_pieces(const std::string& s) {
  std::vector<std::string> out;
  for (auto [a, b] : gpt2_pretokenize(s)) out.push_back(s.substr(a, b - a));
  return out;
}

Tokenizer bpe(std::vector<std::string> pieces, std::vector<std::string> merges, int unk = -1) {
  Tokenizer t;
  t.kind = TokKind::bpe;
  t.add_space_prefix = false;
  t.pieces = std::move(pieces);
  t.merges = std::move(merges);
  t.unk = unk;
  t.finalize();
  return t;
}

Tokenizer wordpiece(std::vector<std::string> pieces, bool lowercase = true) {
  Tokenizer t;
  t.kind = TokKind::wordpiece;
  t.pieces = std::move(pieces);
  t.lowercase = lowercase;
  t.finalize();
  t.unk = t.find("[UNK]");
  t.cls = t.find("[CLS]");
  t.sep = t.find("[SEP]");
  return t;
}

std::vector<std::string> pieces_of(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.pieces.at(id));
  return out;
}

std::string fixture(const std::string& family) { return std::string(TQ_SOURCE_DIR) + "/tests/fixtures/families/" + family; }

}  // namespace

// Published outputs of GPT-2's pre-tokenizer: the Hugging Face NLP course (chapter 6,
// "Normalization and pre-tokenization") shows "Hello, how are  you?" split as
// Hello | , | Ġhow | Ġare | Ġ | Ġyou | ? — the second of two spaces leads "you".
TEST(Gpt2Split, MatchesPublishedExamples) {
  EXPECT_EQ(gpt2_pieces("Hello, how are  you?"),
            (std::vector<std::string>{"Hello", ",", " how", " are", " ", " you", "?"}));
  EXPECT_EQ(gpt2_pieces("Hello my name is Nathan, i'm a french computer science student."),
            (std::vector<std::string>{"Hello", " my", " name", " is", " Nathan", ",", " i", "'m", " a", " french",
                                      " computer", " science", " student", "."}));
}

// Hand-derived from the pattern: contractions are lower-case only, letters and numbers are
// Unicode classes, runs of other characters stay together, trailing white space is one piece.
TEST(Gpt2Split, HandDerivedCases) {
  EXPECT_EQ(gpt2_pieces("I'll DON'T we've"),
            (std::vector<std::string>{"I", "'ll", " DON", "'", "T", " we", "'ve"}));
  EXPECT_EQ(gpt2_pieces("na\xc3\xafve caf\xc3\xa9 42\xe2\x82\xac \xe6\x9d\xb1\xe4\xba\xac"),  // naïve café 42€ 東京
            (std::vector<std::string>{"na\xc3\xafve", " caf\xc3\xa9", " 42", "\xe2\x82\xac", " \xe6\x9d\xb1\xe4\xba\xac"}));
  // Only ' ' may lead a word: the last newline before "b" is a piece of its own.
  EXPECT_EQ(gpt2_pieces("a\n\nb  "), (std::vector<std::string>{"a", "\n", "\n", "b", "  "}));
  EXPECT_EQ(gpt2_pieces("x?!... 3.14"), (std::vector<std::string>{"x", "?!...", " 3", ".", "14"}));
  EXPECT_TRUE(gpt2_pieces("").empty());
}

// Merges apply lowest rank first, every occurrence of the pair left to right.
TEST(ByteLevelBpe, MergesByRank) {
  Tokenizer t = bpe({"a", "b", "c", "ab", "bc", "abc"}, {"a b", "b c", "ab c"});
  EXPECT_EQ(pieces_of(t, encode(t, "abc", false)), (std::vector<std::string>{"abc"}));
  // (a b) outranks (b c): b c ab → bc ab.
  EXPECT_EQ(pieces_of(t, encode(t, "bcab", false)), (std::vector<std::string>{"bc", "ab"}));
  EXPECT_EQ(pieces_of(t, encode(t, "abab", false)), (std::vector<std::string>{"ab", "ab"}));
}

// The BPE walk-through of the Hugging Face NLP course (chapter 6, "Byte-Pair Encoding
// tokenization"): base vocabulary b g h n p s u, merges (u g), (u n), (h ug); "bug" →
// b ug, "mug" → [UNK] ug, "thug" → [UNK] hug, "unhug" → un hug.
TEST(ByteLevelBpe, CourseWalkThrough) {
  Tokenizer t = bpe({"[UNK]", "b", "g", "h", "n", "p", "s", "u", "ug", "un", "hug"}, {"u g", "u n", "h ug"}, 0);
  EXPECT_EQ(pieces_of(t, encode(t, "bug", false)), (std::vector<std::string>{"b", "ug"}));
  EXPECT_EQ(pieces_of(t, encode(t, "mug", false)), (std::vector<std::string>{"[UNK]", "ug"}));
  EXPECT_EQ(pieces_of(t, encode(t, "thug", false)), (std::vector<std::string>{"[UNK]", "hug"}));
  EXPECT_EQ(pieces_of(t, encode(t, "unhug", false)), (std::vector<std::string>{"un", "hug"}));
}

// The fixture vocabulary holds all 256 byte characters, so any bytes round-trip.
TEST(ByteLevelBpe, AnyBytesRoundTrip) {
  Model m = load_model(fixture("gpt2"));
  std::string s = "Caf\xc3\xa9 \xff\xfe bad UTF-8, tabs\t\tand  the end  ";
  s.push_back('\0');
  auto ids = encode(m.tok, s, false);
  EXPECT_EQ(decode(m.tok, ids), s);
  // Space is the byte character U+0120 'Ġ', and " the" is one merged piece.
  auto the = encode(m.tok, " the", false);
  ASSERT_EQ(the.size(), 1u);
  EXPECT_EQ(m.tok.pieces[the[0]], "\xc4\xa0the");
}

// BERT's basic tokenizer. The Hugging Face NLP course shows bert-base-uncased normalising
// "Héllò hôw are ü?" to "hello how are u?", and splitting "Hello, how are  you?" into
// Hello , how are you ?. The rest is hand-derived from BERT's rules.
TEST(BertSplit, MatchesPublishedAndHandDerivedCases) {
  EXPECT_EQ(bert_pretokenize("H\xc3\xa9ll\xc3\xb2 h\xc3\xb4w are \xc3\xbc?", true),
            (std::vector<std::string>{"hello", "how", "are", "u", "?"}));
  EXPECT_EQ(bert_pretokenize("Hello, how are  you?", false),
            (std::vector<std::string>{"Hello", ",", "how", "are", "you", "?"}));
  // CJK ideographs stand alone, katakana does not; U+00A0 separates; a control character is dropped.
  EXPECT_EQ(bert_pretokenize("\xe6\x9d\xb1\xe4\xba\xac\xe3\x82\xbf\xe3\x83\xaf\xe3\x83\xbc\xc2\xa0x\x01y", true),
            (std::vector<std::string>{"\xe6\x9d\xb1", "\xe4\xba\xac", "\xe3\x82\xbf\xe3\x83\xaf\xe3\x83\xbc", "xy"}));
  // Full lower-casing: İ → i + U+0307, whose mark the accent strip then drops; ß stays.
  EXPECT_EQ(bert_pretokenize("\xc4\xb0stanbul Stra\xc3\x9f" "e", true), (std::vector<std::string>{"istanbul", "stra\xc3\x9f" "e"}));
  // Cased: accents stay; Unicode punctuation (« », U+2014) splits.
  EXPECT_EQ(bert_pretokenize("\xc2\xabH\xc3\xa9\xe2\x80\x94x\xc2\xbb", false),
            (std::vector<std::string>{"\xc2\xab", "H\xc3\xa9", "\xe2\x80\x94", "x", "\xc2\xbb"}));
}

// Greedy longest match first; a word with any unmatched rest is one [UNK].
TEST(WordPiece, LongestMatchFirst) {
  Tokenizer t = wordpiece({"[UNK]", "[CLS]", "[SEP]", "b", "h", "hug", "##u", "##gs", "##s", "##g", ",", "u"});
  EXPECT_EQ(pieces_of(t, encode(t, "hugs", false)), (std::vector<std::string>{"hug", "##s"}));
  EXPECT_EQ(pieces_of(t, encode(t, "Bugs, hug", false)),
            (std::vector<std::string>{"b", "##u", "##gs", ",", "hug"}));
  EXPECT_EQ(pieces_of(t, encode(t, "mug hugx", false)), (std::vector<std::string>{"[UNK]", "[UNK]"}));
  EXPECT_EQ(pieces_of(t, encode(t, "hug", true)), (std::vector<std::string>{"[CLS]", "hug", "[SEP]"}));
  EXPECT_EQ(pieces_of(t, encode(t, std::string(101, 'u'), false)), (std::vector<std::string>{"[UNK]"}));
  Tokenizer cased = wordpiece({"[UNK]", "hug", "Hug"}, false);
  EXPECT_EQ(pieces_of(cased, encode(cased, "Hug hug", false)), (std::vector<std::string>{"Hug", "hug"}));
}

}  // namespace tq
