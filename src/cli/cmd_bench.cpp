// tquant bench: kernel and end-to-end figures, each a ratio of two things
// measured in the same run.
#include <fmt/format.h>

#include <chrono>

#include "cli/common.h"
#include "core/mmap.h"
#include "core/threads.h"
#include "eval/bench.h"
#include "kernels/bench_gemm.h"
#include "io/load.h"
#include "nn/forward.h"
#include "nn/random_model.h"

namespace tq::cli {

// Prefill: tokens/s over a T-token prompt. Decode: tokens/s of single-token
// steps with a KV cache after that prompt. Both are reported in one case.
static BenchCase bench_model(const Model& m, const std::string& label, int T, int steps) {
  using clk = std::chrono::steady_clock;
  std::vector<int32_t> toks(T + steps);
  for (int i = 0; i < T + steps; i++) toks[i] = (i * 7919 + 1) % m.cfg.vocab;
  Workspace ws;
  double best_prefill = 1e30, best_decode = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    KVCache cache;
    cache.init(m.cfg, 1, T + steps);
    Input in{1, T, toks.data()};
    in.last_only = true;
    auto t0 = clk::now();
    forward(m, in, ws, no_hooks(), &cache);
    cache.len = T;
    auto t1 = clk::now();
    for (int s = 0; s < steps; s++) {
      Input step{1, 1, toks.data() + T + s};
      step.last_only = true;
      forward(m, step, ws, no_hooks(), &cache);
      cache.len++;
    }
    auto t2 = clk::now();
    best_prefill = std::min(best_prefill, std::chrono::duration<double>(t1 - t0).count());
    best_decode = std::min(best_decode, std::chrono::duration<double>(t2 - t1).count());
  }
  return {"fp32_e2e", fmt::format("{} T={}", label, T), "decode tok/s", "prefill tok/s", steps / best_decode,
          T / best_prefill, "tok/s"};
}

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "kernel and end-to-end speed, as ratios measured in one run");
  static std::string json_out, filter;
  static bool quick = false;
  static Common common;
  cmd->add_option("--json", json_out, "write one object per case to FILE ('-' for stdout)");
  cmd->add_flag("--quick", quick, "small shapes only (a smoke test)");
  cmd->add_option("--filter", filter, "run only cases whose name contains this");
  add_common(cmd, common);
  // Integer kernels: GEMM/GEMV per instruction-set path against OpenBLAS and oneDNN.
  static GemmBenchOptions gemm;
  cmd->add_option("--gemm-m", gemm.M, "int8/low-bit GEMM rows (tokens) to time")->delimiter(',');
  cmd->add_option("--gemm-nk", gemm.NK, "int8/low-bit GEMM sizes N = K to time")->delimiter(',');
  cmd->add_option("--gemm-seconds", gemm.seconds, "seconds per timing batch");
  cmd->add_option("--gemm-rounds", gemm.rounds, "interleaved batches per contender (the fastest counts)");
  cmd->add_flag("--gemm-scalar", gemm.scalar, "also time the portable scalar path");
  cmd->add_flag("--gemm-cpu-clock", gemm.cpu_clock,
                "time by process CPU time (with -t 1: discounts other processes on a shared machine)");
  cmd->callback([] {
    set_threads(common.threads);
    std::vector<BenchCase> cases;
    auto want = [&](const std::string& name) { return filter.empty() || name.find(filter) != std::string::npos; };
    auto report = [&](const BenchCase& c) {
      cases.push_back(c);
      if (json_out != "-") fmt::print(stderr, "  {} {}: {:.2f}x\n", c.name, c.shape, c.ratio());
    };
    if (want("gemm_f32")) {
      std::vector<std::array<int, 3>> shapes = quick ? std::vector<std::array<int, 3>>{{16, 256, 256}}
                                                     : std::vector<std::array<int, 3>>{{1, 4096, 4096},
                                                                                        {128, 4096, 4096},
                                                                                        {512, 4096, 4096}};
      for (auto [M, N, K] : shapes) report(bench_gemm_f32(M, N, K));
    }
    if (want("gemm_int8") || want("gemm_w")) {
      if (quick) gemm.M = {16}, gemm.NK = {1024};
      bench_gemm_cases(gemm, [&](const GemmBenchCase& c) {
        if (want(c.name)) report({c.name, c.shape(), c.ours, c.base, c.ours_gops, c.base_gops, "GOP/s"});
      });
    }
    if (want("fp32_e2e")) {
      std::string s260 = std::string(TQ_DEFAULT_SHARED) + "/models/stories260K/stories260K.gguf";
      if (file_exists(s260)) {
        Model m = load_model(s260);
        report(bench_model(m, "stories260K", quick ? 64 : 256, quick ? 16 : 128));
      }
      Config c = quick ? llama_config(256, 2, 4, 4, 704, 4096, 1024)
                       : llama_config(1024, 8, 16, 16, 2816, 32000, 1024);
      Model big = random_model(c, 1);
      std::string label = fmt::format("llama d{} L{} V{}", c.dim, c.n_layers, c.vocab);
      report(bench_model(big, label, quick ? 64 : 512, quick ? 8 : 32));
    }
    if (!json_out.empty()) {
      nlohmann::json j = nlohmann::json::array();
      for (auto& c : cases) j.push_back(c.json());
      write_json(json_out, j);
    }
    if (json_out != "-") {
      fmt::print("threads {}\n", num_threads());
      print_bench_table(cases);
    }
  });
}

}  // namespace tq::cli
