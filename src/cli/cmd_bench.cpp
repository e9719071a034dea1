// tquant bench [--json FILE]: kernel and end-to-end figures as ratios.
#include <fmt/format.h>

#include "cli/common.h"
#include "core/threads.h"
#include "kernels/bench_gemm.h"

namespace tq::cli {

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "kernel and end-to-end figures as ratios, measured in one run");
  static std::string json_out;
  static Common common;
  cmd->add_option("--json", json_out, "write one object per case as a JSON array to FILE ('-' for stdout)");
  add_common(cmd, common);

  // Kernels: GEMM/GEMV per instruction-set path against OpenBLAS and oneDNN.
  static GemmBenchOptions gemm;
  cmd->add_option("--gemm-m", gemm.M, "GEMM rows (tokens) to time")->delimiter(',');
  cmd->add_option("--gemm-nk", gemm.NK, "GEMM sizes N = K to time")->delimiter(',');
  cmd->add_option("--gemm-seconds", gemm.seconds, "seconds per timing batch");
  cmd->add_option("--gemm-rounds", gemm.rounds, "interleaved batches per contender (the fastest counts)");
  cmd->add_flag("--gemm-scalar", gemm.scalar, "also time the portable scalar path");

  cmd->callback([] {
    set_threads(common.threads);
    const bool text = json_out != "-";
    nlohmann::json cases = nlohmann::json::array();

    if (text) fmt::print("GEMM, {} threads: GOP/s = 2·M·N·K per second; ratio = ours / baseline\n", num_threads());
    if (text)
      fmt::print("{:<12} {:>5} {:>5} {:>5}  {:<8} {:>9}  {:<15} {:>9}  {:>6}\n", "kernel", "M", "N", "K", "ours",
                 "GOP/s", "baseline", "GOP/s", "ratio");
    bench_gemm_cases(gemm, [&](const BenchCase& c) {
      if (text)
        fmt::print("{:<12} {:>5} {:>5} {:>5}  {:<8} {:>9.1f}  {:<15} {:>9.1f}  {:>6.2f}\n", c.kernel, c.M, c.N, c.K,
                   c.ours, c.ours_gops, c.baseline, c.baseline_gops, c.ratio);
      cases.push_back({{"kernel", c.kernel}, {"M", c.M}, {"N", c.N}, {"K", c.K}, {"threads", num_threads()},
                       {"ours", c.ours}, {"baseline", c.baseline}, {"ours_gops", c.ours_gops},
                       {"baseline_gops", c.baseline_gops}, {"ratio", c.ratio}});
    });

    if (!json_out.empty()) write_json(json_out, cases);
  });
}

}  // namespace tq::cli
