// tquant stress MODEL -o OUT --channels N --factor F --seed S: an outlier-stress variant of a
// model (passes/stress.h): the same float function, with N channels per layer and site scaled
// by F in their producer and undone in the next linears. OUT.gguf is an F32 GGUF (LLaMA
// models); any other OUT a tquant directory.
#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "export/gguf_writer.h"
#include "io/tquant_dir.h"
#include "passes/stress.h"

namespace tq::cli {

void register_stress(CLI::App& app) {
  auto* cmd = app.add_subcommand("stress", "make an outlier-stress variant of a model (same float function)");
  static std::string path, out, sites = "qkv_in,up_in,down_in", json_out;
  static StressOptions opt;
  static Common common;
  cmd->add_option("model", path, "model to stress")->required();
  cmd->add_option("-o,--output", out, "OUT.gguf (F32 GGUF, LLaMA models) or a tquant directory")->required();
  cmd->add_option("--channels", opt.channels, "outlier channels per layer and site")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--factor", opt.factor, "their scale")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", opt.seed, "which channels")->capture_default_str();
  cmd->add_option("--sites", sites, "qkv_in, up_in (via the norms) and down_in (via the up projection's rows)")
      ->capture_default_str();
  cmd->add_option("--json", json_out, "write the channels chosen and the measured drift as JSON ('-' for stdout)");
  add_common(cmd, common);
  cmd->callback([] {
    opt.sites = parse_sites(sites);
    for (Site s : opt.sites)
      if (s != Site::qkv_in && s != Site::up_in && s != Site::down_in)
        bad_input("stress sites are qkv_in, up_in and down_in, not {}", site_name(s));
    const bool gguf = out.size() > 5 && out.compare(out.size() - 5, 5, ".gguf") == 0;
    Model fp = load(path, common);
    if (gguf) TQ_CHECK_INPUT(fp.cfg.arch == "llama", "-o {}: a GGUF holds LLaMA models; give a directory", out);
    Model m = fp;
    nlohmann::json rec = stress_model(m, opt);
    double drift = logit_drift(m, fp);
    rec["logit_drift"] = drift;
    if (!(drift <= 1e-5)) run_failed("stress: the logits moved by {:.3g} (relative), more than 1e-5", drift);
    if (gguf) write_gguf_f32(m, out);
    else save_tquant_dir(out, m, QuantPlan{}, {{"source", path}, {"stress", rec}});
    fmt::print(stderr, "stress: {} channels x {} at {} in every layer; logits moved by {:.2g} (relative); wrote {}\n",
               opt.channels, opt.factor, sites, drift, out);
    if (!json_out.empty()) write_json(json_out, rec);
  });
}

}  // namespace tq::cli
