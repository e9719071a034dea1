// tquant diagnose MODEL --calib SPEC --report DIR: for every site, how much of
// the per-tensor quantization error comes from range amplification by outliers
// (docs/methods.md §4.5), ranked, with the channels responsible (eval/diagnose.h).
// --imatrix-out FILE also writes the calibration's importance matrix for llama.cpp.
#include <fmt/format.h>

#include "cli/common.h"
#include "eval/diagnose.h"
#include "export/imatrix_export.h"
#include "passes/pass.h"

namespace tq::cli {

void register_diagnose(CLI::App& app) {
  auto* cmd = app.add_subcommand("diagnose", "find where quantization error comes from: outliers or rounding");
  static std::string path, calib, report_dir, json_out, imatrix_out;
  static int bits = 8, top = 5;
  static double k = 3.0;
  static Common common;
  cmd->add_option("model", path, "model to diagnose")->required();
  cmd->add_option("--calib", calib, "data to run: FILE[?from=0.9&limit=128], mnist:DIR, sst2:FILE")->required();
  cmd->add_option("--report", report_dir, "write diagnose.json, diagnose.md and diagnose.html here");
  cmd->add_option("--bits", bits, "bit width of the per-tensor quantizer")->check(CLI::Range(2, 8));
  cmd->add_option("--k", k, "outlier band in standard deviations")->check(CLI::Range(0.5, 20.0));
  cmd->add_option("--top", top, "channels to name per site")->check(CLI::Range(0, 100));
  cmd->add_option("--json", json_out, "write the diagnosis as JSON to FILE ('-' for stdout)");
  cmd->add_option("--imatrix-out", imatrix_out,
                  "also write the calibration's importance matrix (sum of x^2 per linear input channel) as "
                  "llama.cpp's imatrix.gguf, for llama-quantize --imatrix or --set imatrix_file=");
  add_common(cmd, common);
  cmd->callback([] {
    Model m = load(path, common);
    CalibData cd = load_calib(calib, m);
    if (!imatrix_out.empty()) {
      Imatrix im = collect_imatrix(m, cd, calib);
      write_imatrix(imatrix_out, im);
      fmt::print(stderr, "diagnose: importance matrix of {} weights over {} calibration sequences -> {}\n",
                 im.entries.size(), im.chunk_count, imatrix_out);
    }
    DiagnoseHook h(bits, k);
    run_calibration(m, cd, h);
    nlohmann::json d = diagnose_json(h, top);
    d["calibration"] = cd.provenance;  // which data: spec, path, slice, bytes, sha256
    std::string title = fmt::format("tquant diagnose: {}", path);
    if (!report_dir.empty()) write_diagnosis(report_dir, title, d);
    if (!json_out.empty()) write_json(json_out, d);
    if (json_out == "-") return;
    fmt::print("{}", diagnose_text(path, d));
  });
}

}  // namespace tq::cli
