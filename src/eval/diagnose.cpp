#include "eval/diagnose.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "eval/report.h"
#include "io/atomic_file.h"

namespace tq {

nlohmann::json diagnose_json(const DiagnoseHook& h, int top_channels) {
  nlohmann::json sites = nlohmann::json::array();
  double total = 0;
  for (auto& [key, s] : h.sites) total += s.sum.e_amp;
  for (auto& [key, s] : h.sites) {
    nlohmann::json ch = nlohmann::json::array();
    if (!s.excess.empty()) {
      std::vector<int> idx(s.excess.size());
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return s.excess[a] > s.excess[b]; });
      double all = std::accumulate(s.excess.begin(), s.excess.end(), 0.0);
      for (int i = 0; i < std::min<int>(top_channels, (int)idx.size()) && s.excess[idx[i]] > 0; i++)
        ch.push_back({{"channel", idx[i]},
                      {"outliers", s.count[idx[i]]},
                      {"excess_share", all > 0 ? s.excess[idx[i]] / all : 0}});
    }
    sites.push_back({{"key", key},
                     {"e_tot", s.sum.e_tot},
                     {"e_amp", s.sum.e_amp},
                     {"share", s.sum.share()},
                     {"dr_mean", s.calls ? s.dr_sum / s.calls : 0},
                     {"dr_max", s.sum.dr},
                     {"outlier_fraction", s.values ? (double)s.outliers / s.values : 0},
                     {"amp_of_model", total > 0 ? s.sum.e_amp / total : 0},
                     {"channels", ch}});
  }
  std::sort(sites.begin(), sites.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a["e_amp"].get<double>() > b["e_amp"].get<double>();
  });
  double e_tot = 0, e_amp = 0;
  for (auto& s : sites) e_tot += s["e_tot"].get<double>(), e_amp += s["e_amp"].get<double>();
  double mean_share = 0;
  for (auto& s : sites) mean_share += s["share"].get<double>();
  return {{"bits", h.bits},
          {"k", h.k},
          {"mean_share", sites.empty() ? 0 : mean_share / sites.size()},
          {"pooled_share", e_tot > 0 ? e_amp / e_tot : 0},
          {"sites", sites}};
}

void write_diagnosis(const std::string& dir, const std::string& title, const nlohmann::json& d) {
  make_dirs(dir);
  write_file_atomic(dir + "/diagnose.json", d.dump(1) + "\n");
  std::string md = fmt::format(
      "# {}\n\nPer-tensor min-max quantization at {} bits; outliers are values beyond {}σ of their tensor's mean.\n"
      "Share = error the inliers pay for the stretched range ÷ all rounding error (docs/methods.md §4.5).\n\n"
      "Mean share over sites {:.1f} %; pooled over all sites {:.1f} %.\n\n"
      "| rank | site | share | of model's amplification | DR mean | DR max | outliers | top channels (share of excess) |\n"
      "|---|---|---|---|---|---|---|---|\n",
      title, d["bits"].get<int>(), d["k"].get<double>(), 100 * d["mean_share"].get<double>(),
      100 * d["pooled_share"].get<double>());
  std::string rows;
  std::vector<std::pair<std::string, double>> bars;
  int rank = 0;
  for (auto& s : d["sites"]) {
    std::string ch;
    for (auto& c : s["channels"])
      ch += fmt::format("{}{} ({:.0f} %)", ch.empty() ? "" : ", ", c["channel"].get<int>(),
                        100 * c["excess_share"].get<double>());
    std::string line = fmt::format("| {} | {} | {:.1f} % | {:.1f} % | {:.2f} | {:.2f} | {:.3f} % | {} |\n", ++rank,
                                   s["key"].get<std::string>(), 100 * s["share"].get<double>(),
                                   100 * s["amp_of_model"].get<double>(), s["dr_mean"].get<double>(),
                                   s["dr_max"].get<double>(), 100 * s["outlier_fraction"].get<double>(), ch);
    md += line;
    rows += line;
    bars.push_back({s["key"].get<std::string>(), 100 * s["share"].get<double>()});
  }
  write_file_atomic(dir + "/diagnose.md", md);
  std::string html = fmt::format("<p>Per-tensor min-max at {} bits, outliers beyond {}σ. Mean share {:.1f} %, pooled "
                                 "{:.1f} %.</p><h2>Share of error from range amplification, by site</h2>",
                                 d["bits"].get<int>(), d["k"].get<double>(), 100 * d["mean_share"].get<double>(),
                                 100 * d["pooled_share"].get<double>());
  html += svg_bars(bars, "%", false);
  html += "<h2>Ranked by amplification error</h2><table><tr><th>site</th><th>share</th><th>of model</th><th>DR "
          "mean</th><th>outliers</th><th>top channels</th></tr>";
  for (auto& s : d["sites"]) {
    std::string ch;
    for (auto& c : s["channels"]) ch += fmt::format("{}{}", ch.empty() ? "" : ", ", c["channel"].get<int>());
    html += fmt::format("<tr><td>{}</td><td>{:.1f} %</td><td>{:.1f} %</td><td>{:.2f}</td><td>{:.3f} %</td><td>{}</td></tr>",
                        html_escape(s["key"].get<std::string>()), 100 * s["share"].get<double>(),
                        100 * s["amp_of_model"].get<double>(), s["dr_mean"].get<double>(),
                        100 * s["outlier_fraction"].get<double>(), ch);
  }
  html += "</table>";
  write_file_atomic(dir + "/diagnose.html", html_page(title, html));
}

std::string diagnose_text(const std::string& model, const nlohmann::json& d, int max_sites) {
  std::string s = fmt::format(
      "{} at {} bits, k = {}: mean share of error from outlier range amplification {:.1f} % (pooled {:.1f} %)\n",
      model, d["bits"].get<int>(), d["k"].get<double>(), 100 * d["mean_share"].get<double>(),
      100 * d["pooled_share"].get<double>());
  s += fmt::format("{:<18} {:>7} {:>9} {:>8}  {}\n", "site", "share", "of model", "DR", "top channels");
  int shown = 0;
  for (auto& site : d["sites"]) {
    if (shown++ == max_sites) break;
    std::string ch;
    for (auto& c : site["channels"]) ch += fmt::format("{}{}", ch.empty() ? "" : ",", c["channel"].get<int>());
    s += fmt::format("{:<18} {:>6.1f}% {:>8.1f}% {:>8.2f}  {}\n", site["key"].get<std::string>(),
                     100 * site["share"].get<double>(), 100 * site["amp_of_model"].get<double>(),
                     site["dr_mean"].get<double>(), ch);
  }
  return s;
}

}  // namespace tq
