// Tokenizer files of Hugging Face directories:
//   tokenizer.model                 SentencePiece (LLaMA)
//   tokenizer.json                  BPE with byte fallback (LLaMA), byte-level BPE (GPT-2, OPT, Llama-3, Qwen2),
//                                   WordPiece (BERT)
//   vocab.json + merges.txt         byte-level BPE (GPT-2, OPT)
//   vocab.txt                       WordPiece (BERT), lower-casing from tokenizer_config.json
#include <sentencepiece_processor.h>

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "core/json.h"
#include "core/mmap.h"
#include "io/hf.h"

namespace tq {

using json = nlohmann::json;

// Every line of a text file (CR LF or LF; no final empty line).
static std::vector<std::string> file_lines(const std::string& path) {
  std::string text = read_text_file(path);
  std::vector<std::string> lines;
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.find('\n', start), text.size());
    lines.push_back(text.substr(start, end - start));
    if (!lines.back().empty() && lines.back().back() == '\r') lines.back().pop_back();
    start = end + 1;
  }
  return lines;
}

// A merge written "a b" or ["a", "b"].
static std::pair<std::string, std::string> merge_pair(const JsonAt& mg) {
  if (mg.json().is_string()) {
    std::string s = mg.string();
    auto sp = s.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == s.size()) mg.fail("merge '{}' is not 'a b'", s);
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (mg.json().is_array() && mg.json().size() == 2) return {mg[0].string(), mg[1].string()};
  mg.fail("a merge is neither 'a b' nor [a, b]");
}

// Pieces indexed by id from a {piece: id} map, plus added tokens beyond it; every id in 0..n−1 must be named.
static void pieces_from_vocab(Tokenizer& tok, const JsonAt& vocab, const std::optional<JsonAt>& added) {
  std::vector<std::pair<int64_t, std::string>> all;
  for (auto& [piece, id] : vocab.items()) all.push_back({id.integer(0, (1 << 24) - 1), piece});
  if (all.empty()) vocab.fail("the vocabulary is empty");
  std::vector<int64_t> special;
  if (added)
    for (auto& t : added->elements()) {
      all.push_back({t["id"].integer(0, (1 << 24) - 1), t["content"].string()});
      if (t.boolean("special", false)) special.push_back(all.back().first);
    }
  int64_t n = 0;
  for (auto& [id, p] : all) n = std::max(n, id + 1);
  // Every id must be named, so there are no more ids than names: bounded before the allocation.
  if (n > (int64_t)all.size()) vocab.fail("ids run to {} but only {} tokens are named", n - 1, all.size());
  tok.pieces.assign(n, "");
  tok.types.assign(n, tok_unused);
  for (auto& [id, p] : all) {
    tok.pieces[id] = p;
    tok.types[id] = tok_normal;
  }
  for (int64_t i = 0; i < n; i++)
    if (tok.types[i] == tok_unused) vocab.fail("no token has id {}", i);
  for (int64_t id : special) tok.types[id] = tok_control;
}

// The optional array of added tokens.
static std::optional<JsonAt> added_tokens(const JsonAt& j) {
  if (!j.has("added_tokens")) return std::nullopt;
  return j["added_tokens"];
}

// The pre-tokenizer of a byte-level BPE: GPT-2's ByteLevel with its own pattern, or (Llama-3,
// Qwen2) a Sequence of a Split by the family's pattern and a ByteLevel without one.
static void bpe_pre_tokenizer(Tokenizer& tok, const JsonAt& j) {
  if (!j.has("pre_tokenizer")) bad_input("a BPE model without byte fallback needs a ByteLevel pre-tokenizer");
  JsonAt pre = j["pre_tokenizer"];
  const std::string type = pre.object().string("type", "");
  if (type == "ByteLevel") {
    if (!pre.boolean("use_regex", true)) pre.fail("ByteLevel without GPT-2's split pattern and no Split before it");
    tok.add_space_prefix = pre.boolean("add_prefix_space", false);
    return;
  }
  if (type != "Sequence") pre.fail("pre-tokenizer '{}' is not supported (ByteLevel, Sequence of Split and ByteLevel are)", type);
  auto steps = pre["pretokenizers"].elements();
  if (steps.size() != 2 || steps[0].object().string("type", "") != "Split" ||
      steps[1].object().string("type", "") != "ByteLevel")
    pre.fail("a Sequence pre-tokenizer other than Split then ByteLevel (Llama-3, Qwen2) is not supported");
  const JsonAt& split = steps[0];
  const std::string regex = split["pattern"].object()["Regex"].string();
  if (regex == bpe_split_regex(BpeSplit::llama3)) tok.split = BpeSplit::llama3;
  else if (regex == bpe_split_regex(BpeSplit::qwen2)) tok.split = BpeSplit::qwen2;
  else split["pattern"].fail("Split pattern is neither Llama-3's nor Qwen2's");
  if (split.string("behavior", "") != "Isolated" || split.boolean("invert", false))
    split.fail("a Split that does not keep each match as its own piece (behavior Isolated, invert false)");
  if (steps[1].boolean("use_regex", true)) steps[1].fail("ByteLevel after a Split must not split again (use_regex false)");
  tok.add_space_prefix = steps[1].boolean("add_prefix_space", false);
}

// tokenizer.json of the byte-level kind (GPT-2, Llama-3, Qwen2): a BPE model behind a ByteLevel
// pre-tokenizer, with no normaliser or NFC's.
static Tokenizer bpe_from_tokenizer_json(const JsonAt& j) {
  JsonAt model = j["model"];
  Tokenizer tok;
  tok.kind = TokKind::bpe;
  bpe_pre_tokenizer(tok, j);
  if (j.has("normalizer")) {
    const std::string type = j["normalizer"].object().string("type", "");
    if (type != "NFC") j["normalizer"].fail("normalizer '{}' before a byte-level BPE is not supported (NFC is)", type);
    tok.nfc = true;
  }
  tok.ignore_merges = model.boolean("ignore_merges", false);
  pieces_from_vocab(tok, model["vocab"], added_tokens(j));
  for (auto& mg : model["merges"].elements()) {
    auto [a, b] = merge_pair(mg);
    tok.merges.push_back(a + " " + b);
  }
  tok.finalize();  // the index, for the look-ups
  if (model.has("unk_token")) tok.unk = tok.find(model["unk_token"].string());
  return tok;
}

static Tokenizer bpe_from_files(const std::string& vocab_path, const std::string& merges_path) {
  Tokenizer tok;
  tok.kind = TokKind::bpe;
  tok.add_space_prefix = false;
  json vocab = read_json_file(vocab_path);
  pieces_from_vocab(tok, JsonAt(vocab, vocab_path), std::nullopt);
  std::vector<std::string> lines = file_lines(merges_path);
  for (size_t line = 1; line <= lines.size(); line++) {
    const std::string& s = lines[line - 1];
    if (s.empty() || (line == 1 && s.rfind("#version", 0) == 0)) continue;
    try {
      json mg(s);
      auto [a, b] = merge_pair(JsonAt(mg, "merge"));
      tok.merges.push_back(a + " " + b);
    } catch (const Error& e) {
      throw Error(e.exit_code, fmt::format("{} line {}: {}", merges_path, line, e.what()));
    }
  }
  tok.finalize();
  tok.unk = tok.find("<|endoftext|>") >= 0 ? tok.find("<|endoftext|>") : tok.find("<unk>");
  return tok;
}

static void wordpiece_specials(Tokenizer& tok) {
  tok.finalize();
  tok.unk = tok.find("[UNK]");
  tok.cls = tok.find("[CLS]");
  tok.sep = tok.find("[SEP]");
  tok.pad = tok.find("[PAD]");
  tok.mask = tok.find("[MASK]");
}

// tokenizer.json of the BERT kind: WordPiece behind the BertNormalizer.
static Tokenizer wordpiece_from_tokenizer_json(const JsonAt& j) {
  JsonAt model = j["model"];
  if (model.string("continuing_subword_prefix", "##") != "##" ||
      model.integer("max_input_chars_per_word", 0, INT64_MAX, 100) != 100)
    bad_input("WordPiece other than BERT's ('##' continuations, words up to 100 characters) is not supported");
  Tokenizer tok;
  tok.kind = TokKind::wordpiece;
  pieces_from_vocab(tok, model["vocab"], added_tokens(j));
  if (j.has("normalizer")) {
    JsonAt norm = j["normalizer"];
    const std::string type = norm.string("type", "");
    if (type != "BertNormalizer") bad_input("normalizer '{}' is not supported", type);
    tok.lowercase = norm.boolean("lowercase", true);
    if (!norm.boolean("clean_text", true) || !norm.boolean("handle_chinese_chars", true) ||
        norm.boolean("strip_accents", tok.lowercase) != tok.lowercase)
      bad_input("a BertNormalizer that does not clean, split CJK, or strip accents exactly when lower-casing");
  }
  wordpiece_specials(tok);
  if (model.has("unk_token")) tok.unk = tok.find(model["unk_token"].string());
  return tok;
}

// vocab.txt: one piece per line, the id is the line number.
static Tokenizer wordpiece_from_vocab_txt(const std::string& dir) {
  Tokenizer tok;
  tok.kind = TokKind::wordpiece;
  tok.pieces = file_lines(dir + "/vocab.txt");
  if (tok.pieces.empty()) bad_input("{}/vocab.txt is empty", dir);
  tok.types.assign(tok.pieces.size(), tok_normal);
  tok.lowercase = true;  // BertTokenizer's default
  std::string cfg = dir + "/tokenizer_config.json";
  if (file_exists(cfg)) {
    json c = read_json_file(cfg);
    tok.lowercase = JsonAt(c, cfg).boolean("do_lower_case", tok.lowercase);
  }
  wordpiece_specials(tok);
  return tok;
}

// tokenizer.json of the LLaMA kind: a BPE model over SentencePiece pieces
// with byte fallback; a merge's rank stands in for the piece score.
static Tokenizer spm_from_tokenizer_json(const JsonAt& j) {
  Tokenizer tok;
  tok.kind = TokKind::spm;
  JsonAt model = j["model"];
  auto vocab = model["vocab"].items();
  const int64_t n = (int64_t)vocab.size();
  tok.pieces.assign(n, "");
  tok.scores.assign(n, 0.0f);
  tok.types.assign(n, tok_normal);
  std::unordered_map<std::string, int64_t> id_of;
  for (auto& [piece, id] : vocab) {
    int64_t i = id.integer(0, n - 1);
    tok.pieces[i] = spm_unescape(piece);
    id_of[piece] = i;
  }
  if (model.has("merges")) {
    int rank = 0;
    for (auto& mg : model["merges"].elements()) {
      auto [a, b] = merge_pair(mg);
      auto it = id_of.find(a + b);
      if (it != id_of.end()) {
        float& s = tok.scores[it->second];
        if (s == 0.0f) s = -(float)(++rank);
      }
    }
  }
  if (auto added = added_tokens(j))
    for (auto& t : added->elements()) {
      int64_t id = t["id"].integer(0, INT64_MAX);
      if (id < n && t.boolean("special", false)) tok.types[id] = tok_control;
    }
  tok.unk = tok.find("<unk>");
  return tok;
}

Tokenizer load_hf_tokenizer(const std::string& dir, const nlohmann::json& config) {
  Tokenizer tok;
  std::string spm_path = dir + "/tokenizer.model", json_path = dir + "/tokenizer.json";
  if (file_exists(spm_path)) {
    sentencepiece::SentencePieceProcessor sp;
    if (!sp.Load(spm_path).ok()) bad_input("{} is not a SentencePiece model", spm_path);
    tok.kind = TokKind::spm;
    for (int i = 0; i < sp.GetPieceSize(); i++) {
      std::string p = sp.IdToPiece(i), q;
      for (size_t k = 0; k < p.size(); k++) {
        if (p.compare(k, 3, "\xe2\x96\x81") == 0) {
          q += ' ';
          k += 2;
        } else {
          q += p[k];
        }
      }
      tok.pieces.push_back(q);
      tok.scores.push_back(sp.GetScore(i));
      tok.types.push_back(sp.IsControl(i) ? tok_control : sp.IsUnknown(i) ? tok_unknown : sp.IsByte(i) ? tok_byte : tok_normal);
    }
    tok.unk = sp.unk_id();
    tok.bos = sp.bos_id();
    tok.eos = sp.eos_id();
  } else if (file_exists(json_path)) {
    nlohmann::json doc = read_json_file(json_path);
    JsonAt j(doc, json_path);
    try {
      std::string type = j["model"].object().string("type", "");
      if (type == "BPE" && j["model"].boolean("byte_fallback", false)) {
        tok = spm_from_tokenizer_json(j);
      } else if (type == "BPE") {
        tok = bpe_from_tokenizer_json(j);
      } else if (type == "WordPiece") {
        tok = wordpiece_from_tokenizer_json(j);
      } else {
        bad_input("model type '{}' is not supported (BPE, WordPiece are)", type);
      }
    } catch (const Error& e) {
      std::string msg = e.what();  // messages of JsonAt name the file already
      throw Error(e.exit_code, msg.rfind(json_path, 0) == 0 ? msg : json_path + ": " + msg);
    }
  } else if (file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt")) {
    tok = bpe_from_files(dir + "/vocab.json", dir + "/merges.txt");
  } else if (file_exists(dir + "/vocab.txt")) {
    tok = wordpiece_from_vocab_txt(dir);
  } else {
    return tok;  // no tokenizer: the model still runs on token ids
  }
  auto id = [&](const char* key, int fallback) {  // a special token id of config.json (null or a list: the tokenizer's)
    return config.contains(key) && config[key].is_number_integer()
               ? (int)JsonAt(config, "config.json")[key].integer(-1, tok.size() - 1)
               : fallback;
  };
  tok.bos = id("bos_token_id", tok.bos);
  tok.eos = id("eos_token_id", tok.eos);
  tok.pad = id("pad_token_id", tok.pad);
  for (int s : {tok.bos, tok.eos, tok.pad, tok.cls, tok.sep, tok.mask})
    if (s >= 0 && s < tok.size() && !tok.types.empty()) tok.types[s] = tok_control;
  tok.finalize();
  return tok;
}

// SentencePiece writes U+2581 where our pieces hold a space.
static std::string spm_escape(const std::string& piece) {
  std::string out;
  for (char ch : piece) out += ch == ' ' ? std::string("\xe2\x96\x81") : std::string(1, ch);
  return out;
}

// The merges of a SentencePiece vocabulary: every split of a normal piece into two pieces of the
// vocabulary, pieces by falling score (ties by id) — the rank order the reader turns back into scores.
static json spm_merges(const Tokenizer& t) {
  std::unordered_map<std::string, int> id_of;
  for (int i = 0; i < t.size(); i++) id_of.emplace(t.pieces[i], i);
  std::vector<int> order;
  for (int i = 0; i < t.size(); i++)
    if (t.types[i] == tok_normal && t.pieces[i].size() > 1) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return t.scores[a] > t.scores[b]; });
  json merges = json::array();
  for (int i : order) {
    const std::string& p = t.pieces[i];
    std::vector<std::pair<int, int>> splits;
    for (size_t k = 1; k < p.size(); k++) {
      if (((unsigned char)p[k] & 0xC0) == 0x80) continue;  // inside a UTF-8 character
      auto a = id_of.find(p.substr(0, k)), b = id_of.find(p.substr(k));
      if (a != id_of.end() && b != id_of.end()) splits.push_back({a->second, b->second});
    }
    std::sort(splits.begin(), splits.end());
    for (auto [a, b] : splits) merges.push_back(spm_escape(t.pieces[a]) + " " + spm_escape(t.pieces[b]));
  }
  return merges;
}

json hf_tokenizer_json(const Tokenizer& t) {
  TQ_CHECK_INPUT(t.kind == TokKind::spm || t.kind == TokKind::bpe,
                 "tokenizer.json is written for SentencePiece and byte-level BPE tokenizers only");
  json vocab = json::object(), added = json::array();
  const bool spm = t.kind == TokKind::spm;
  for (int i = 0; i < t.size(); i++) {
    vocab[spm ? spm_escape(t.pieces[i]) : t.pieces[i]] = i;
    const int type = t.types.empty() ? tok_normal : t.types[i];
    if (type == tok_control || type == tok_unknown)
      added.push_back({{"id", i}, {"content", t.pieces[i]}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  if (!spm) {
    json merges = json::array();
    for (auto& m : t.merges) merges.push_back(m);
    const bool gpt2 = t.split == BpeSplit::gpt2;
    json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", t.add_space_prefix}, {"trim_offsets", true},
                       {"use_regex", gpt2}};
    json pre = byte_level;
    if (!gpt2) {
      json split = {{"type", "Split"},
                    {"pattern", {{"Regex", bpe_split_regex(t.split)}}},
                    {"behavior", "Isolated"}, {"invert", false}};
      pre = {{"type", "Sequence"}, {"pretokenizers", {split, byte_level}}};
    }
    return {{"version", "1.0"}, {"added_tokens", added},
            {"normalizer", t.nfc ? json{{"type", "NFC"}} : json(nullptr)}, {"pre_tokenizer", pre},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model", {{"type", "BPE"}, {"ignore_merges", t.ignore_merges}, {"vocab", vocab}, {"merges", merges}}}};
  }
  const std::string sp = "\xe2\x96\x81";
  json normalizers = json::array();
  if (t.add_space_prefix) normalizers.push_back({{"type", "Prepend"}, {"prepend", sp}});
  normalizers.push_back({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", sp}});
  json decoders = {{{"type", "Replace"}, {"pattern", {{"String", sp}}}, {"content", " "}},
                   {{"type", "ByteFallback"}},
                   {{"type", "Fuse"}}};
  if (t.add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  json j = {{"version", "1.0"}, {"added_tokens", added},
            {"normalizer", {{"type", "Sequence"}, {"normalizers", normalizers}}}, {"pre_tokenizer", nullptr},
            {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
            {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"fuse_unk", true}, {"vocab", vocab},
                       {"merges", spm_merges(t)}}}};
  if (t.unk >= 0) j["model"]["unk_token"] = t.pieces[t.unk];
  if (t.bos >= 0 && t.add_bos) {  // the BOS the encoder adds, as HF's fast tokenizer adds it
    const std::string& b = t.pieces[t.bos];
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", b}, {"type_id", 1}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{b, {{"id", b}, {"ids", {t.bos}}, {"tokens", {b}}}}}}};
  }
  return j;
}

}  // namespace tq
