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
  cmd->add_flag("--gemm-cpu-clock", gemm.cpu_clock,
                "time by process CPU time (with -t 1: discounts other processes on a shared machine)");

  cmd->callback([] {
    set_threads(common.threads);
    const bool text = json_out != "-";
    nlohmann::json cases = nlohmann::json::array();

    if (text)
      fmt::print("threads {}, {} clock; GOP/s = 2·M·N·K per second; ratio = ours / base\n", num_threads(),
                 gemm.cpu_clock ? "CPU" : "wall");
    if (text)
      fmt::print("{:<16} {:<15} {:<14} {:>8}  {:<18} {:>8}  {:>6}\n", "case", "shape", "ours", "GOP/s", "base",
                 "GOP/s", "ratio");
    bench_gemm_cases(gemm, [&](const GemmBenchCase& c) {
      if (text)
        fmt::print("{:<16} {:<15} {:<14} {:>8.1f}  {:<18} {:>8.1f}  {:>6.2f}\n", c.name, c.shape(), c.ours,
                   c.ours_gops, c.base, c.base_gops, c.ratio());
      cases.push_back({{"name", c.name}, {"shape", c.shape()}, {"ours", c.ours}, {"base", c.base},
                       {"ours_value", c.ours_gops}, {"base_value", c.base_gops}, {"unit", "GOP/s"},
                       {"ratio", c.ratio()}, {"threads", num_threads()},
                       {"clock", gemm.cpu_clock ? "cpu" : "wall"}});
    });

    if (!json_out.empty()) write_json(json_out, cases);
  });
}

}  // namespace tq::cli
