#include "text/spm_train.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "core/error.h"

namespace tq {

namespace {
struct Lines : sentencepiece::SentenceIterator {
  const std::vector<std::string>& v;
  size_t i = 0;
  explicit Lines(const std::vector<std::string>& lines) : v(lines) {}
  bool done() const override { return i >= v.size(); }
  void Next() override { i++; }
  const std::string& value() const override { return v[i]; }
  sentencepiece::util::Status status() const override { return {}; }
};
}  // namespace

std::string train_spm_bpe(const std::vector<std::string>& lines, int vocab_size) {
  TQ_CHECK_INPUT(vocab_size >= 260, "a byte-fallback vocabulary needs at least 260 pieces, got {}", vocab_size);
  TQ_CHECK_INPUT(!lines.empty(), "no text to train a tokenizer on");
  size_t longest = 0;
  for (auto& l : lines) longest = std::max(longest, l.size());
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", "1.0"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"split_digits", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"max_sentence_length", std::to_string(std::max<size_t>(4192, longest + 1))},
      {"input_sentence_size", "0"},     // every line, in order
      {"shuffle_input_sentence", "false"},
      {"num_threads", "1"},             // one thread: the same vocabulary on every run
      {"minloglevel", "1"},
  };
  Lines it(lines);
  std::string proto;
  auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  if (!st.ok()) run_failed("sentencepiece training failed: {}", st.ToString());
  return proto;
}

Tokenizer tokenizer_from_spm(const std::string& model_proto) {
  sentencepiece::SentencePieceProcessor sp;
  auto st = sp.LoadFromSerializedProto(model_proto);
  if (!st.ok()) bad_input("not a sentencepiece model: {}", st.ToString());
  Tokenizer t;
  t.kind = TokKind::spm;
  for (int i = 0; i < sp.GetPieceSize(); i++) {
    std::string p = sp.IdToPiece(i), q;
    for (size_t j = 0; j < p.size(); j++) {  // U+2581 is the space
      if (p.compare(j, 3, "\xe2\x96\x81") == 0) {
        q += ' ';
        j += 2;
      } else {
        q += p[j];
      }
    }
    t.pieces.push_back(q);
    t.scores.push_back(sp.GetScore(i));
    t.types.push_back(sp.IsUnknown(i) ? tok_unknown
                      : sp.IsControl(i) ? tok_control
                      : sp.IsByte(i)    ? tok_byte
                      : sp.IsUnused(i)  ? tok_unused
                                        : tok_normal);
  }
  t.unk = sp.unk_id();
  t.bos = sp.bos_id();
  t.eos = sp.eos_id();
  t.finalize();
  return t;
}

}  // namespace tq
