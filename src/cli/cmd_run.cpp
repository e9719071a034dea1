// tquant run MODEL -p TEXT: generate text with a language model.
// tquant run MODEL --image FILE | --mnist DIR --index N | --text TEXT: classify one input.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "cli/common.h"
#include "core/error.h"
#include "nn/accuracy.h"
#include "nn/generate.h"
#include "nn/ops.h"

namespace tq::cli {

namespace {

struct ClassifyOptions {
  std::string image, mnist, text, json_out;
  int64_t index = 0;
  int top = 3;
};

void classify(const Model& m, const ClassifyOptions& o, Hooks& hooks) {
  Batch b;
  if (!o.text.empty()) {
    b = text_batches(m, {{o.text, 0}})[0];
    b.labels = {-1};
  } else {
    ImageSet s = o.image.empty() ? read_mnist(o.mnist, slice_of(o.index, 1)) : read_pnm(o.image);
    TQ_CHECK_INPUT(s.n == 1, "{}: no image at index {}", o.mnist, o.index);
    b = image_batches(m.cfg, s, 1)[0];
  }
  Workspace ws;
  forward(m, b.input(), ws, hooks);
  const int V = m.cfg.n_out;
  std::vector<double> lp(V);
  if (!std::isfinite(log_softmax_row(lp.data(), ws.logits.ptr(), V)))
    bad_input("the model's output is not finite; its weights or plan are broken");
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int c) { return lp[a] > lp[c]; });
  auto name = [&](int k) { return k < (int)m.labels.size() ? m.labels[k] : std::to_string(k); };
  nlohmann::json j = {{"class", order[0]}, {"label", name(order[0])}, {"prob", std::exp(lp[order[0]])}};
  nlohmann::json probs = nlohmann::json::array();
  for (int k = 0; k < V; k++) probs.push_back(std::exp(lp[k]));
  j["probs"] = probs;
  if (b.labels[0] >= 0) j["true_class"] = b.labels[0];
  if (!o.json_out.empty()) write_json(o.json_out, j);
  if (o.json_out == "-") return;
  fmt::print("class {} ({}) p={:.4f}", order[0], name(order[0]), std::exp(lp[order[0]]));
  if (b.labels[0] >= 0) fmt::print("   true class {} ({})", b.labels[0], name(b.labels[0]));
  fmt::print("\n");
  for (int r = 1; r < std::min(o.top, V); r++)
    fmt::print("  then {} ({}) p={:.4f}\n", order[r], name(order[r]), std::exp(lp[order[r]]));
}

}  // namespace

void register_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "generate text from a prompt, or classify an image or a sentence");
  static std::string path, prompt;
  static SampleOptions opt;
  static ClassifyOptions cls;
  static Common common{0, "", true};  // lazy: the forward runs on the weights as stored
  static bool simulate = false;
  opt.max_new = 64;
  cmd->add_option("model", path, "model to run")->required();
  cmd->add_option("-p,--prompt", prompt, "prompt text (empty: start from BOS)");
  cmd->add_option("-n,--tokens", opt.max_new, "tokens to generate")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temp", opt.temp, "sampling temperature (0: greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", opt.top_p, "nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", opt.seed, "sampling seed");
  auto* image = cmd->add_option("--image", cls.image, "classify a binary PGM (P5) or PPM (P6) image");
  auto* mnist = cmd->add_option("--mnist", cls.mnist, "classify an image of the MNIST IDX files in DIR (--index)");
  cmd->add_option("--index", cls.index, "which MNIST image (from 0)")->check(CLI::NonNegativeNumber)->needs(mnist);
  auto* text = cmd->add_option("--text", cls.text, "classify a sentence");
  image->excludes(mnist)->excludes(text);
  mnist->excludes(text);
  cmd->add_option("--top", cls.top, "classes to show")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--json", cls.json_out, "write the classification as JSON to FILE ('-' for stdout)");
  cmd->add_flag("--simulate", simulate, "run a tquant directory with fake-quant simulation instead of the integer kernels");
  add_common(cmd, common);
  cmd->callback([] {
    Loaded loaded = load_with_plan(path, common);  // a tquant directory runs on the integer kernels
    check_finite_weights(loaded.model, path);
    prepare_run(loaded, simulate);
    const Model& m = loaded.model;
    Hooks& hooks = loaded.hooks();
    if (!cls.image.empty() || !cls.mnist.empty() || !cls.text.empty()) {
      TQ_CHECK_INPUT(!m.cfg.is_lm(), "{} is a language model; use -p to generate", path);
      classify(m, cls, hooks);
      return;
    }
    TQ_CHECK_INPUT(m.cfg.is_lm(), "{} is a classifier; give --image, --mnist DIR --index N, or --text", path);
    TQ_CHECK_INPUT(!m.tok.empty(), "{} has no tokenizer", path);
    std::vector<int32_t> ids = encode(m.tok, prompt, true);
    TQ_CHECK_INPUT(!ids.empty(), "{} has no BOS token to start from: give a prompt (-p)", path);
    fmt::print("{}", prompt);
    std::fflush(stdout);
    int32_t prev = ids.back();
    generate(m, ids, opt, [&](int32_t t) {
      fmt::print("{}", decode_token(m.tok, prev, t));
      std::fflush(stdout);
      prev = t;
    }, hooks);
    fmt::print("\n");
  });
}

}  // namespace tq::cli
