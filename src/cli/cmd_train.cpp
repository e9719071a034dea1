// tquant train --data FILE -o OUT: a LLaMA-architecture language model from scratch,
// with a SentencePiece BPE tokenizer (byte fallback) trained on the same lines.
#include <fmt/format.h>

#include <chrono>
#include <cstring>

#include "cli/common.h"
#include "cli/training.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/mmap.h"
#include "nn/random_model.h"
#include "text/spm_train.h"

namespace tq::cli {

// The tokenizer travels in the checkpoint, so that a resumed run does not depend on retraining it.
static std::string checkpoint_tokenizer(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  const SafeTensor* t = f.find("tokenizer.spm");
  if (!t || t->dtype != "U8") bad_input("{}: the checkpoint holds no tokenizer (not written by tquant train?)", path);
  return std::string(reinterpret_cast<const char*>(t->bytes.data()), t->bytes.size());
}

void register_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a LLaMA-architecture language model and its tokenizer from scratch");
  static TrainFlags f;
  static Common common;
  static int vocab = 512, dim = 128, layers = 4, heads = 4, kv_heads = 0, hidden = 0;
  static bool untied = false;
  f.opt.steps = 2000;
  f.opt.batch = 16;
  f.opt.schedule.lr = 1e-3f;
  f.opt.schedule.min_lr = 1e-4f;
  f.opt.adam.weight_decay = 0.1f;
  add_train_flags(cmd, f);
  cmd->add_option("--vocab", vocab, "tokenizer size (SentencePiece BPE with byte fallback)")
      ->capture_default_str()
      ->check(CLI::Range(260, 1 << 20));
  cmd->add_option("--dim", dim, "model width")->capture_default_str()->check(CLI::Range(8, 1 << 16));
  cmd->add_option("--layers", layers, "transformer blocks")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--heads", heads, "attention heads")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--kv-heads", kv_heads, "key/value heads (default: --heads)")->check(CLI::Range(1, 1024));
  cmd->add_option("--hidden", hidden, "SwiGLU width (default: 8/3·dim rounded up to a multiple of 8)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--untied", untied, "a separate output matrix instead of the token embedding");
  add_common(cmd, common);
  cmd->callback([] {
    set_threads(common.threads);
    TrainOptions opt = train_options(f);
    TQ_CHECK_INPUT(dim % heads == 0, "--dim {} is not a multiple of --heads {}", dim, heads);
    LmSplit split = split_lines(f.task);
    auto t0 = std::chrono::steady_clock::now();
    std::string proto = f.resume && file_exists(opt.checkpoint) ? checkpoint_tokenizer(opt.checkpoint)
                                                                : train_spm_bpe(split.fit, vocab);
    Tokenizer tok = tokenizer_from_spm(proto);
    Config c = llama_config(dim, layers, heads, kv_heads ? kv_heads : heads, hidden ? hidden : (8 * dim / 3 + 7) / 8 * 8,
                            tok.size(), f.task.ctx);
    c.tied_head = !untied;
    Model m = init_model(c, f.opt.seed);
    m.tok = tok;
    TokenWindows data(token_stream(tok, split.fit), f.task.ctx);
    fmt::print(stderr, "train: {} lines, {} tokens, {} sequences of {}; {} parameters\n", split.fit.size(),
               data.stream.size(), data.size(), f.task.ctx, parameter_count(m));
    Trainer t(m, data, opt);
    t.extra.push_back({"tokenizer.spm", "U8", {(int64_t)proto.size()}, std::vector<uint8_t>(proto.begin(), proto.end())});
    if (f.resume && file_exists(opt.checkpoint)) t.resume(opt.checkpoint);
    t.run();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    write_outputs(m, t.log, f, {{"pass", "train"}, {"data", f.task.data}, {"optimizer", optimizer_json(opt)}});
    fmt::print("{}: {} steps, final loss {:.4f}, {:.0f} s with {} threads\n", f.out, t.adam.step, t.log.back().loss,
               secs, num_threads());
    double ppl = held_out_ppl(m, split, "held-out");
    if (!std::isnan(ppl))
      fmt::print("  held-out PPL {:.4f} on lines {}.. of {} (tquant eval {} --data {} --offset {} --ctx {})\n", ppl,
                 split.held.offset, split.held.path, f.out, split.held.path, split.held.offset, f.task.ctx);
  });
}

}  // namespace tq::cli
