// Byte-level BPE (GPT-2, OPT, Llama-3, Qwen2) and WordPiece (BERT).
#include <gtest/gtest.h>

#include <fstream>

#include "core/json.h"
#include "core/mmap.h"
#include "export/gguf_writer.h"
#include "io/hf.h"
#include "io/load.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

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

// tests/fixtures/bpe_splits.json: the patterns and, per family, [text, pieces] as Python's regex
// module cuts them (tests/fixtures/make_bpe_splits.py).
const nlohmann::json& split_reference() {
  static const nlohmann::json j = read_json_file(std::string(TQ_SOURCE_DIR) + "/tests/fixtures/bpe_splits.json");
  return j;
}

// The GPT-2 fixture's tokenizer (all 256 byte characters and a few hundred merges) with another
// split, and one more merge, " 1", that only GPT-2's split leaves whole in " 1234".
Tokenizer byte_level(BpeSplit split) {
  Tokenizer t = load_model(fixture("gpt2")).tok;
  t.pieces.push_back("\xc4\xa0" "1");
  t.types.push_back(tok_normal);
  t.merges.push_back("\xc4\xa0 1");
  t.split = split;
  t.ignore_merges = split == BpeSplit::llama3;
  t.nfc = split == BpeSplit::qwen2;
  t.finalize();
  return t;
}

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

// The hand matcher of the Llama-3 and Qwen2 patterns against an independent regex engine on
// 431 texts (hand-picked and random over several scripts, spaces, newlines and marks).
TEST(Llama3Split, MatchesRegexReference) {
  for (auto [name, max_digits] : {std::pair{"llama3", 3}, {"qwen2", 1}}) {
    int checked = 0;
    for (auto& c : split_reference()[name]) {
      const std::string text = c[0];
      std::vector<std::string> got;
      for (auto [a, b] : llama3_pretokenize(text, max_digits)) got.push_back(text.substr(a, b - a));
      EXPECT_EQ(got, c[1].get<std::vector<std::string>>()) << name << " on '" << text << "'";
      checked++;
    }
    EXPECT_GT(checked, 400) << name;
  }
}

// With ignore_merges (Llama-3) a split piece that is in the vocabulary is one token, even where
// the merges would not build it.
TEST(ByteLevelBpe, IgnoreMergesTakesWholePieces) {
  Tokenizer t = bpe({"a", "b", "c", "bc", "abc"}, {"b c"});
  t.split = BpeSplit::llama3;
  EXPECT_EQ(pieces_of(t, encode(t, "abc", false)), (std::vector<std::string>{"a", "bc"}));
  t.ignore_merges = true;
  EXPECT_EQ(pieces_of(t, encode(t, "abc", false)), (std::vector<std::string>{"abc"}));
  EXPECT_EQ(pieces_of(t, encode(t, "cab", false)), (std::vector<std::string>{"c", "a", "b"}));
}

// Qwen2 normalises to NFC first: e + U+0301 is then the same text as é.
TEST(ByteLevelBpe, NfcBeforeSplitting) {
  Tokenizer t = byte_level(BpeSplit::qwen2);
  EXPECT_EQ(encode(t, "caf" "e\xcc\x81", false), encode(t, "caf\xc3\xa9", false));
  t.nfc = false;
  EXPECT_NE(encode(t, "caf" "e\xcc\x81", false), encode(t, "caf\xc3\xa9", false));
  EXPECT_EQ(nfc("\xff" "e\xcc\x81"), "\xff" "e\xcc\x81");  // ill-formed UTF-8 stays as it is
}

// tokenizer.json of Llama-3 and Qwen2 (a Split with the family's pattern, then ByteLevel;
// ignore_merges; NFC), the GGUF file (tokenizer.ggml.pre) and the tquant directory all carry the
// split: each read back encodes as the original.
TEST(ByteLevelBpe, Llama3AndQwen2SplitsRoundTrip) {
  const std::string text = "Numbers 1234567, it's (odd)\n\n  caf\xc3\xa9\r\n\xe6\x9d\xb1\xe4\xba\xac!! 'LL x";
  for (BpeSplit split : {BpeSplit::llama3, BpeSplit::qwen2}) {
    SCOPED_TRACE(bpe_split_name(split));
    const Tokenizer t = byte_level(split);
    const std::vector<int32_t> want = encode(t, text, false);
    EXPECT_NE(want, encode(byte_level(BpeSplit::gpt2), text, false));  // the split matters for this text
    test::TempDir d;
    nlohmann::json j = hf_tokenizer_json(t);
    EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"],
              split_reference()["patterns"][split == BpeSplit::llama3 ? "llama3" : "qwen2"]);
    std::ofstream(d.file("tokenizer.json")) << j.dump();
    Tokenizer hf = load_hf_tokenizer(d.path, nlohmann::json::object());
    EXPECT_EQ(hf.split, split);
    EXPECT_EQ(hf.ignore_merges, t.ignore_merges);
    EXPECT_EQ(hf.nfc, t.nfc);
    EXPECT_EQ(encode(hf, text, false), want);

    Model m = random_model(llama_config(16, 1, 2, 2, 32, t.size(), 32), 3);
    m.tok = t;
    write_gguf_f32(m, d.file("m.gguf"));
    Tokenizer gg = load_model(d.file("m.gguf")).tok;
    EXPECT_EQ(gg.split, split);
    EXPECT_EQ(gg.ignore_merges, t.ignore_merges);
    EXPECT_EQ(gg.nfc, t.nfc);
    EXPECT_EQ(gg.merges, t.merges);
    EXPECT_EQ(encode(gg, text, false), want);

    nlohmann::json dir = tokenizer_to_json(t);
    Tokenizer td = tokenizer_from_json(JsonAt(dir, "tokenizer"));
    EXPECT_EQ(td.split, split);
    EXPECT_EQ(encode(td, text, false), want);
  }
}

// A split of another family, named in GGUF or tokenizer.json, is refused by name, not taken for GPT-2's.
TEST(ByteLevelBpe, UnknownSplitsAreRefused) {
  EXPECT_THROW(bpe_split_named("deepseek-llm"), Error);
  test::TempDir d;
  nlohmann::json j = hf_tokenizer_json(byte_level(BpeSplit::llama3));
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{N}+|[^\\p{N}]+";
  std::ofstream(d.file("tokenizer.json")) << j.dump();
  try {
    load_hf_tokenizer(d.path, nlohmann::json::object());
    ADD_FAILURE() << "an unknown Split pattern was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("neither Llama-3's nor Qwen2's"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
}

}  // namespace tq
