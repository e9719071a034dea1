// tquant run MODEL -p TEXT: generate text with a language model.
#include <fmt/format.h>

#include <cstdio>

#include "cli/common.h"
#include "core/error.h"
#include "nn/generate.h"

namespace tq::cli {

void register_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "generate text from a prompt");
  static std::string path, prompt;
  static SampleOptions opt;
  static Common common;
  opt.max_new = 64;
  cmd->add_option("model", path, "model to run")->required();
  cmd->add_option("-p,--prompt", prompt, "prompt text (empty: start from BOS)");
  cmd->add_option("-n,--tokens", opt.max_new, "tokens to generate")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temp", opt.temp, "sampling temperature (0: greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", opt.top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", opt.seed, "sampling seed");
  add_common(cmd, common);
  cmd->callback([] {
    Model m = load(path, common);
    TQ_CHECK_INPUT(m.cfg.is_lm(), "{} is a classifier; use --image or --text (model families)", path);
    TQ_CHECK_INPUT(!m.tok.empty(), "{} has no tokenizer", path);
    std::vector<int32_t> ids = encode(m.tok, prompt, true);
    fmt::print("{}", prompt);
    std::fflush(stdout);
    int32_t prev = ids.back();
    generate(m, ids, opt, [&](int32_t t) {
      fmt::print("{}", decode_token(m.tok, prev, t));
      std::fflush(stdout);
      prev = t;
    });
    fmt::print("\n");
  });
}

}  // namespace tq::cli
