// Tokenizer files of Hugging Face directories:
//   tokenizer.model                 SentencePiece (LLaMA)
//   tokenizer.json                  BPE with byte fallback (LLaMA), byte-level BPE (GPT-2, OPT), WordPiece (BERT)
//   vocab.json + merges.txt         byte-level BPE (GPT-2, OPT)
//   vocab.txt                       WordPiece (BERT), lower-casing from tokenizer_config.json
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "core/mmap.h"
#include "io/hf.h"

namespace tq {

using json = nlohmann::json;

json read_json_file(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    bad_input("{}: {}", path, e.what());
  }
}

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
static std::pair<std::string, std::string> merge_pair(const json& mg) {
  if (mg.is_string()) {
    std::string s = mg.get<std::string>();
    auto sp = s.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == s.size()) bad_input("merge '{}' is not 'a b'", s);
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string())
    return {mg[0].get<std::string>(), mg[1].get<std::string>()};
  bad_input("a merge is neither 'a b' nor [a, b]");
}

// Pieces indexed by id from a {piece: id} map, plus added tokens beyond it; every id in 0..n−1 must be named.
static void pieces_from_vocab(Tokenizer& tok, const json& vocab, const json& added) {
  if (!vocab.is_object() || vocab.empty()) bad_input("the vocabulary is not a non-empty map of pieces to ids");
  std::vector<std::pair<int64_t, std::string>> all;
  for (auto& [piece, id] : vocab.items()) {
    if (!id.is_number_integer()) bad_input("id of '{}' is not an integer", piece);
    all.push_back({id.get<int64_t>(), piece});
  }
  std::vector<int64_t> special;
  if (added.is_array())
    for (auto& t : added) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
          !t["content"].is_string())
        bad_input("an added token lacks an integer id or its content");
      all.push_back({t["id"].get<int64_t>(), t["content"].get<std::string>()});
      if (t.value("special", false)) special.push_back(all.back().first);
    }
  int64_t n = 0;
  for (auto& [id, p] : all) {
    if (id < 0 || id >= (1 << 24)) bad_input("token id {} of '{}' is out of range", id, p);
    n = std::max(n, id + 1);
  }
  tok.pieces.assign(n, "");
  tok.types.assign(n, tok_unused);
  for (auto& [id, p] : all) {
    tok.pieces[id] = p;
    tok.types[id] = tok_normal;
  }
  for (int64_t i = 0; i < n; i++)
    if (tok.types[i] == tok_unused) bad_input("no token has id {}", i);
  for (int64_t id : special) tok.types[id] = tok_control;
}

// tokenizer.json of the GPT-2 kind: a BPE model behind the ByteLevel pre-tokenizer.
static Tokenizer bpe_from_tokenizer_json(const json& j) {
  const json& model = j["model"];
  const json pre = j.value("pre_tokenizer", json());
  if (!pre.is_object() || pre.value("type", "") != "ByteLevel")
    bad_input("a BPE model without byte fallback needs the ByteLevel pre-tokenizer (GPT-2 style)");
  if (!pre.value("use_regex", true)) bad_input("ByteLevel without GPT-2's split pattern is not supported");
  Tokenizer tok;
  tok.kind = TokKind::bpe;
  tok.add_space_prefix = pre.value("add_prefix_space", false);
  pieces_from_vocab(tok, model.value("vocab", json()), j.value("added_tokens", json()));
  if (!model.contains("merges") || !model["merges"].is_array()) bad_input("model.merges is missing");
  for (auto& mg : model["merges"]) {
    auto [a, b] = merge_pair(mg);
    tok.merges.push_back(a + " " + b);
  }
  tok.finalize();  // the index, for the look-ups
  if (model.contains("unk_token") && model["unk_token"].is_string())
    tok.unk = tok.find(model["unk_token"].get<std::string>());
  return tok;
}

static Tokenizer bpe_from_files(const std::string& vocab_path, const std::string& merges_path) {
  Tokenizer tok;
  tok.kind = TokKind::bpe;
  tok.add_space_prefix = false;
  try {
    pieces_from_vocab(tok, read_json_file(vocab_path), json());
  } catch (const Error& e) {
    throw Error(e.exit_code, vocab_path + ": " + e.what());
  }
  std::vector<std::string> lines = file_lines(merges_path);
  for (size_t line = 1; line <= lines.size(); line++) {
    const std::string& s = lines[line - 1];
    if (s.empty() || (line == 1 && s.rfind("#version", 0) == 0)) continue;
    try {
      auto [a, b] = merge_pair(json(s));
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
static Tokenizer wordpiece_from_tokenizer_json(const json& j) {
  const json& model = j["model"];
  if (model.value("continuing_subword_prefix", "##") != "##" || model.value("max_input_chars_per_word", 100) != 100)
    bad_input("WordPiece other than BERT's ('##' continuations, words up to 100 characters) is not supported");
  Tokenizer tok;
  tok.kind = TokKind::wordpiece;
  pieces_from_vocab(tok, model.value("vocab", json()), j.value("added_tokens", json()));
  const json norm = j.value("normalizer", json());
  if (norm.is_object()) {
    if (norm.value("type", "") != "BertNormalizer") bad_input("normalizer '{}' is not supported", norm.value("type", ""));
    tok.lowercase = norm.value("lowercase", true);
    const json strip = norm.value("strip_accents", json());
    if (!norm.value("clean_text", true) || !norm.value("handle_chinese_chars", true) ||
        (strip.is_boolean() && strip.get<bool>() != tok.lowercase))
      bad_input("a BertNormalizer that does not clean, split CJK, or strip accents exactly when lower-casing");
  }
  wordpiece_specials(tok);
  if (model.contains("unk_token") && model["unk_token"].is_string())
    tok.unk = tok.find(model["unk_token"].get<std::string>());
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
    if (c.is_object() && c.contains("do_lower_case") && c["do_lower_case"].is_boolean())
      tok.lowercase = c["do_lower_case"].get<bool>();
  }
  wordpiece_specials(tok);
  return tok;
}

// tokenizer.json of the LLaMA kind: a BPE model over SentencePiece pieces
// with byte fallback; a merge's rank stands in for the piece score.
static Tokenizer spm_from_tokenizer_json(const nlohmann::json& j) {
  Tokenizer tok;
  tok.kind = TokKind::spm;
  const auto& model = j["model"];
  if (!model.contains("vocab") || !model["vocab"].is_object()) bad_input("tokenizer.json has no model.vocab");
  size_t n = model["vocab"].size();
  tok.pieces.assign(n, "");
  tok.scores.assign(n, 0.0f);
  tok.types.assign(n, tok_normal);
  for (auto& [piece, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<uint64_t>() >= n)
      bad_input("tokenizer.json: id of '{}' is out of range", piece);
    tok.pieces[id.get<int>()] = spm_unescape(piece);
  }
  if (model.contains("merges") && model["merges"].is_array()) {
    int rank = 0;
    for (auto& mg : model["merges"]) {
      auto [a, b] = merge_pair(mg);
      auto it = model["vocab"].find(a + b);
      if (it != model["vocab"].end()) {
        float& s = tok.scores[it->get<int>()];
        if (s == 0.0f) s = -(float)(++rank);
      }
    }
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array())
    for (auto& t : j["added_tokens"]) {
      if (!t.contains("id") || !t["id"].is_number_integer()) continue;
      int64_t id = t["id"].get<int64_t>();
      if (id >= 0 && (size_t)id < n && t.value("special", false)) tok.types[id] = tok_control;
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
    nlohmann::json j = read_json_file(json_path);
    if (!j.contains("model") || !j["model"].is_object()) bad_input("{}: no model section", json_path);
    std::string type = j["model"].value("type", "");
    try {
      if (type == "BPE" && j["model"].value("byte_fallback", false)) {
        tok = spm_from_tokenizer_json(j);
      } else if (type == "BPE") {
        tok = bpe_from_tokenizer_json(j);
      } else if (type == "WordPiece") {
        tok = wordpiece_from_tokenizer_json(j);
      } else {
        bad_input("model type '{}' is not supported (BPE, WordPiece are)", type);
      }
    } catch (const Error& e) {
      throw Error(e.exit_code, json_path + ": " + e.what());
    }
  } else if (file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt")) {
    tok = bpe_from_files(dir + "/vocab.json", dir + "/merges.txt");
  } else if (file_exists(dir + "/vocab.txt")) {
    tok = wordpiece_from_vocab_txt(dir);
  } else {
    return tok;  // no tokenizer: the model still runs on token ids
  }
  auto id = [&](const char* key, int fallback) {
    return config.contains(key) && config[key].is_number_integer() ? config[key].get<int>() : fallback;
  };
  tok.bos = id("bos_token_id", tok.bos);
  tok.eos = id("eos_token_id", tok.eos);
  tok.pad = id("pad_token_id", tok.pad);
  for (int s : {tok.bos, tok.eos, tok.pad, tok.cls, tok.sep, tok.mask})
    if (s >= 0 && s < tok.size() && !tok.types.empty()) tok.types[s] = tok_control;
  tok.finalize();
  return tok;
}


}  // namespace tq
