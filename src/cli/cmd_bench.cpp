// tquant bench: kernel and end-to-end figures, each a ratio of two things
// measured in the same run.
#include <fmt/format.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <omp.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "cli/common.h"
#include "core/error.h"
#include "core/mmap.h"
#include "core/threads.h"
#include "eval/bench.h"
#include "export/generate.h"
#include "kernels/bench_gemm.h"
#include "io/load.h"
#include "nn/forward.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "runtime/runtime.h"

namespace tq::cli {

// End to end (issue 9): prefill tokens/s over a T-token prompt, and decode
// tokens/s of single-token steps with a KV cache after it; best of 3.
struct E2eRun {
  double prefill = 0, decode = 0;
  int64_t bytes = 0, rss = 0;  // rss: peak resident set while running (loading and packing excluded)
  std::string exec;
  std::vector<std::string> kernels;  // Runtime::kernel_lines()
};

static E2eRun time_e2e(const Model& m, Hooks& hooks, int T, int steps, bool cpu_clock) {
  malloc_trim(0);  // the heap the in-memory quantization freed goes back: the peak is what running needs
  reset_peak_rss();
  std::vector<int32_t> toks(T + steps);
  for (int i = 0; i < T + steps; i++) toks[i] = (i * 7919 + 1) % m.cfg.vocab;
  Workspace ws;
  double best_prefill = 1e30, best_decode = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    KVCache cache;
    cache.init(m.cfg, 1, T + steps);
    Input in{1, T, toks.data()};
    in.last_only = true;
    double t0 = clock_seconds(cpu_clock);
    forward(m, in, ws, hooks, &cache);
    cache.len = T;
    double t1 = clock_seconds(cpu_clock);
    for (int s = 0; s < steps; s++) {
      Input step{1, 1, toks.data() + T + s};
      step.last_only = true;
      forward(m, step, ws, hooks, &cache);
      cache.len++;
    }
    double t2 = clock_seconds(cpu_clock);
    best_prefill = std::min(best_prefill, t1 - t0);
    best_decode = std::min(best_decode, t2 - t1);
  }
  return {T / best_prefill, steps / best_decode, runtime_bytes(m), peak_rss_bytes(), "", {}};
}

// The quantized forms, made in memory without calibration data: W8A8 is per-row
// int8 weights with per-token int8 activations (K3); W4 is 4-bit asymmetric
// groups of 64 with float activations (K4); W4A8 the same weights with per-token
// int8 activations (K4-a8, like llama.cpp's Q4 × Q8 blocks); the head too unless
// it is tied.
static const char* kForms[] = {"fp32", "W8A8", "W4", "W4A8"};
static Recipe e2e_recipe(const std::string& form) {
  nlohmann::json step = {{"pass", "rtn"}, {"a_bits", 0}};
  if (form == "W8A8") step["w_bits"] = 8;
  else step.update({{"w_bits", 4}, {"w_scheme", "asym"}, {"w_gran", "group"}, {"group", 64}});
  if (form != "W4")
    step.update({{"a_bits", 8}, {"a_scheme", "sym"}, {"a_gran", "token"}, {"sites", "qkv_in,o_in,up_in,down_in,head_in"}});
  return recipe_from_json({{"passes", {step}}}, form);
}

// Every form of one model (each made afresh, so each RSS is its own), as ratios
// to fp32; which kernel runs what, per form, into kernel_report.
static std::vector<BenchCase> bench_e2e(const std::function<Model()>& make, const std::string& label, int T,
                                        int steps, bool cpu_clock, std::vector<std::string>& kernel_report) {
  constexpr int nf = std::size(kForms);
  const char* const* forms = kForms;
  E2eRun runs[nf];
  for (int f = 0; f < nf; f++) {
    Model m = make();
    std::optional<Runtime> rt;
    if (f > 0) {
      QuantPlan plan;
      CalibData none;
      PassContext ctx(m, plan, none);
      run_recipe(e2e_recipe(forms[f]), ctx);
      rt = attach_runtime(m, plan);
    }
    runs[f] = time_e2e(m, rt ? rt->hooks() : no_hooks(), T, steps, cpu_clock);
    runs[f].exec = rt ? rt->summary() : "fp32 BLAS";
    runs[f].kernels = rt ? rt->kernel_lines() : std::vector<std::string>{"every linear and attention: fp32 BLAS"};
  }
  kernel_report.push_back(fmt::format("kernels, {}:", label));
  for (int f = 0; f < nf; f++)
    for (size_t i = 0; i < runs[f].kernels.size(); i++)
      kernel_report.push_back(fmt::format("  {:<5} {}", i ? "" : forms[f], runs[f].kernels[i]));
  std::vector<BenchCase> out;
  for (const char* phase : {"prefill", "decode"})
    for (int f = 1; f < nf; f++) {
      bool pre = std::string(phase) == "prefill";
      BenchCase c{fmt::format("e2e_{}", phase), fmt::format("{} T={}", label, pre ? T : steps),
                  fmt::format("{} {} tok/s", forms[f], phase), fmt::format("fp32 {} tok/s", phase),
                  pre ? runs[f].prefill : runs[f].decode, pre ? runs[0].prefill : runs[0].decode, "tok/s"};
      c.extra = {{"ours_model_bytes", runs[f].bytes}, {"base_model_bytes", runs[0].bytes},
                 {"ours_peak_rss_bytes", runs[f].rss}, {"base_peak_rss_bytes", runs[0].rss},
                 {"ours_executors", runs[f].exec}, {"ours_kernels", runs[f].kernels},
                 {"clock", cpu_clock ? "process CPU time" : "wall"}};
      c.note = fmt::format("model {:.1f} MB, peak RSS {:.1f} MB (fp32 {:.1f} MB, {:.1f} MB)", runs[f].bytes / 1e6,
                           runs[f].rss / 1e6, runs[0].bytes / 1e6, runs[0].rss / 1e6);
      out.push_back(c);
    }
  return out;
}

// A scratch directory removed with everything in it when it goes out of scope.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    std::string tmpl = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : "/tmp") + "/tquant-bench-XXXXXX";
    if (!mkdtemp(tmpl.data())) run_failed("bench: cannot make a directory in {}", tmpl);
    path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// This binary run again with args, its output into log; its exit status and peak RSS.
struct ChildRun {
  int status = -1;
  int64_t peak_rss_bytes = 0;
};
static ChildRun run_self(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv = {const_cast<char*>("tquant")};
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) run_failed("bench: fork failed");
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  if (wait4(pid, &status, 0, &ru) != pid) run_failed("bench: lost the child process");
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), (int64_t)ru.ru_maxrss * 1024};
}

// Quantization against model size (issue 14): `tquant quantize` of generated F16 LLaMAs
// of 1, 2, 4 … blocks, each in a child process so that its peak RSS is its own
// (wait4's ru_maxrss). The ratio is the throughput (F16 MB/s) against the smallest
// model's: 1 means time grows with the size, no worse; the RSS stays that of one block.
static std::vector<BenchCase> bench_quantize(const Config& base, const std::vector<int>& layers,
                                             const std::string& recipe) {
  ScratchDir dir;
  std::vector<BenchCase> out;
  double base_mbps = 0;
  for (int L : layers) {
    GenerateOptions g;
    g.cfg = base;
    g.cfg.n_layers = L;
    const std::string model = dir.path + fmt::format("/m{}.gguf", L), q = dir.path + fmt::format("/q{}", L);
    write_random_model(model, g);
    const double mb = std::filesystem::file_size(model) / 1e6;
    const std::vector<std::string> args = {"quantize", model, "--recipe", recipe, "-o", q, "--threads",
                                           std::to_string(num_threads())};
    const double t0 = clock_seconds(false);
    const ChildRun r = run_self(args, dir.path + "/log");
    const double secs = clock_seconds(false) - t0;
    if (r.status != 0)
      run_failed("bench: quantize of the {}-block model failed (exit {}): {}", L, r.status, read_text_file(dir.path + "/log"));
    std::filesystem::remove_all(q);
    std::filesystem::remove(model);
    const double mbps = mb / secs;
    if (base_mbps == 0) base_mbps = mbps;
    BenchCase c{"quantize", fmt::format("{} d{} L{} ({:.0f} MB F16)", recipe, base.dim, L, mb),
                fmt::format("MB/s at L{}", L), fmt::format("MB/s at L{}", layers[0]), mbps, base_mbps, "MB/s"};
    c.extra = {{"seconds", secs}, {"model_bytes", (int64_t)(mb * 1e6)}, {"peak_rss_bytes", r.peak_rss_bytes}};
    c.note = fmt::format("{:.1f} s, peak RSS {:.0f} MB for a {:.0f} MB model", secs, r.peak_rss_bytes / 1e6, mb);
    out.push_back(c);
  }
  return out;
}

// The clock /proc/cpuinfo reads ("cpu MHz" of the first core; on virtual machines the
// nominal one), in GHz, or 0.
static double nominal_clock_ghz() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("cpu MHz", 0) == 0 && line.find(':') != std::string::npos) return std::atof(line.c_str() + line.find(':') + 1) / 1000;
  return 0;
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
  static bool cpu_clock = false;
  static int e2e_dim = 2048, e2e_layers = 4;
  cmd->add_flag("--cpu-clock", cpu_clock, "end-to-end cases timed by process CPU time (use with -t 1)");
  cmd->add_option("--e2e-dim", e2e_dim, "dimension of the generated LLaMA of the end-to-end cases")
      ->check(CLI::Range(128, 16384));
  cmd->add_option("--e2e-layers", e2e_layers, "layers of the generated LLaMA")->check(CLI::Range(1, 128));
  cmd->callback([] {
    set_threads(common.threads);
    std::vector<BenchCase> cases;
    std::string peaks;
    std::vector<std::string> kernel_report;
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
    if (std::any_of(std::begin(kGemmKernels), std::end(kGemmKernels),
                    [&](const char* k) { return want(std::string("gemm_") + k); })) {
      if (quick) gemm.M = {16}, gemm.NK = {1024};
      gemm.clock_ghz = measure_clock_ghz();
      const int cores = std::min(num_threads(), omp_get_num_procs());
      peaks = fmt::format("int8 peaks at {} threads × {:.2f} GHz (measured: a chain of dependent adds on every "
                          "thread): AMX {:.0f} GOP/s ({} op/cycle), AVX-512 VNNI {:.0f} GOP/s ({} op/cycle)",
                          cores, gemm.clock_ghz, cores * gemm.clock_ghz * kAmxOpsPerCycle, kAmxOpsPerCycle,
                          cores * gemm.clock_ghz * kVnniOpsPerCycle, kVnniOpsPerCycle);
      if (double nominal = nominal_clock_ghz(); nominal > 0)
        peaks += fmt::format("; at the {:.2f} GHz /proc/cpuinfo reads, AMX {:.0f} GOP/s", nominal,
                             cores * nominal * kAmxOpsPerCycle);
      bench_gemm_cases(gemm, [&](const GemmBenchCase& c) {
        if (!want(c.name)) return;
        BenchCase bc{c.name, c.shape(), c.ours, c.base, c.ours_gops, c.base_gops, "GOP/s"};
        if (c.peak_gops > 0) {
          bc.extra = {{"ours_peak_gops", c.peak_gops}, {"ours_pct_of_peak", 100 * c.ours_gops / c.peak_gops},
                      {"clock_ghz", gemm.clock_ghz}};
          bc.note = fmt::format("{:.0f} % of peak", 100 * c.ours_gops / c.peak_gops);
          if (const double nominal = nominal_clock_ghz(); nominal > 0) {
            const double pct = 100 * c.ours_gops / (c.peak_gops * nominal / gemm.clock_ghz);
            bc.extra["ours_pct_of_nominal_peak"] = pct;
            bc.note += fmt::format(" ({:.0f} % at the nominal clock)", pct);
          }
        }
        report(bc);
      });
    }
    if (want("e2e")) {
      TQ_CHECK_INPUT(e2e_dim % 128 == 0, "--e2e-dim {} is not a multiple of the head size 128", e2e_dim);
      std::string s260 = std::string(TQ_DEFAULT_SHARED) + "/models/stories260K/stories260K.gguf";
      if (file_exists(s260))
        for (auto& c : bench_e2e([&] { return load_model(s260); }, "stories260K", quick ? 64 : 256, quick ? 16 : 128,
                                 cpu_clock, kernel_report))
          report(c);
      Config c = quick ? llama_config(256, 2, 4, 4, 704, 4096, 1024)
                       : llama_config(e2e_dim, e2e_layers, e2e_dim / 128, e2e_dim / 128, e2e_dim * 11 / 4, 32000, 1024);
      std::string label = fmt::format("llama d{} L{} F{} V{}", c.dim, c.n_layers, c.hidden, c.vocab);
      for (auto& bc :
           bench_e2e([&] { return random_model(c, 1); }, label, quick ? 64 : 128, quick ? 8 : 32, cpu_clock, kernel_report))
        report(bc);
    }
    if (want("quantize")) {
      Config c = quick ? llama_config(256, 1, 4, 4, 704, 4096, 1024)
                       : llama_config(e2e_dim, 1, e2e_dim / 128, e2e_dim / 128, e2e_dim * 11 / 4, 32000, 1024);
      for (auto& bc : bench_quantize(c, quick ? std::vector<int>{1, 2} : std::vector<int>{1, 2, 4, 8}, "w4a16-g64-rtn"))
        report(bc);
    }
    if (!json_out.empty()) {
      nlohmann::json j = nlohmann::json::array();
      for (auto& c : cases) j.push_back(c.json());
      write_json(json_out, j);
    }
    if (json_out != "-") {
      fmt::print("threads {}, {} clock\n", num_threads(),
                 cpu_clock ? "process CPU" : "wall");
      print_bench_table(cases);
      if (!peaks.empty()) fmt::print("{}\n", peaks);
      for (auto& line : kernel_report) fmt::print("{}\n", line);
    }
  });
}

}  // namespace tq::cli
