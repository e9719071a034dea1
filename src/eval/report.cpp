#include "eval/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "io/atomic_file.h"
#include "quant/weights.h"

namespace tq {

void SiteErrorHook::forward(Site site, int layer, float* x, int rows, int cols) {
  std::string key = site_key(site, layer);
  auto it = plan_.sites.find(key);
  if (it == plan_.sites.end()) return;
  QuantSpec transform = it->second, quant = it->second;
  transform.bits = 0;  // the transformed float value is the reference the quantizer should reproduce
  quant.pre_inv.clear();
  quant.pre_shift.clear();
  fake_quant(x, rows, cols, transform);
  int64_t n = (int64_t)rows * cols;
  ref_.assign(x, x + n);
  saturated[key] += fake_quant(x, rows, cols, quant);
  auto& e = energy[key];
  for (int64_t i = 0; i < n; i++) {
    e.first += (double)ref_[i] * ref_[i];
    e.second += ((double)ref_[i] - x[i]) * ((double)ref_[i] - x[i]);
  }
}

nlohmann::json site_errors(const Model& q, const QuantPlan& plan, const CalibData& probe) {
  SiteErrorHook err(plan);
  if (!probe.empty()) run_calibration(q, probe, err);
  nlohmann::json sites = nlohmann::json::array();
  for (auto& [key, spec] : plan.sites) {
    auto e = err.energy.count(key) ? err.energy[key] : std::make_pair(0.0, 0.0);
    sites.push_back({{"key", key},
                     {"bits", spec.bits},
                     {"scheme", to_string(spec.scheme)},
                     {"calibrator", spec.calibrator},
                     {"sqnr_db", e.second > 0 ? 10 * std::log10(e.first / e.second) : 99.0},
                     {"saturated", err.saturated[key]}});
  }
  return sites;
}

nlohmann::json weight_errors(const Model& fp, const Model& q, const QuantPlan& plan) {
  nlohmann::json out = nlohmann::json::array();
  auto a = named_tensors(const_cast<Model&>(fp)), b = named_tensors(const_cast<Model&>(q));
  for (size_t i = 0; i < a.size(); i++) {
    auto it = plan.weights.find(a[i].name);
    if (it == plan.weights.end() || !it->second.enabled()) continue;
    const QuantSpec& s = it->second;
    out.push_back({{"name", a[i].name},
                   {"bits", s.bits},
                   {"scheme", to_string(s.scheme)},
                   {"gran", s.gran == Gran::group ? fmt::format("group {}", s.group) : to_string(s.gran)},
                   {"sqnr_db", sqnr_db(a[i].t->ptr(), b[i].t->ptr(), a[i].t->numel())}});
  }
  return out;
}

nlohmann::json channel_ranges(const std::map<std::string, SiteStats>& stats) {
  nlohmann::json out = nlohmann::json::object();
  for (auto& [key, st] : stats) {
    if (!st.per_channel()) continue;
    out[key] = {{"min", st.col_min}, {"max", st.col_max}, {"std", st.stddev()}};
  }
  return out;
}

namespace {

std::string num(const nlohmann::json& v, int prec = 4) {
  if (!v.is_number()) return v.is_null() ? "–" : v.dump();
  double d = v.get<double>();
  if (std::isinf(d)) return "∞";
  return fmt::format("{:.{}f}", d, prec);
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string svg_bars(const std::vector<std::pair<std::string, double>>& rows, const std::string& unit,
                     bool db_colours) {
  if (rows.empty()) return "";
  double mx = 1e-9;
  for (auto& [l, v] : rows)
    if (std::isfinite(v)) mx = std::max(mx, v);
  int h = 16, w = 760, lw = 190, pad = 4;
  std::string s = fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-size='11'>", w,
                              (int)rows.size() * h + pad * 2);
  for (size_t i = 0; i < rows.size(); i++) {
    auto& [label, v] = rows[i];
    double frac = std::isfinite(v) ? std::max(0.0, v) / mx : 1.0;
    int y = pad + (int)i * h, bw = (int)(frac * (w - lw - 90));
    s += fmt::format("<text x='{}' y='{}' text-anchor='end'>{}</text>", lw - 6, y + 12, html_escape(label));
    s += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='{}'/>", lw, y + 2, std::max(bw, 1), h - 4,
                     !db_colours ? "#5b8dd6" : v < 20 ? "#d9534f" : v < 30 ? "#f0ad4e" : "#5b8dd6");
    s += fmt::format("<text x='{}' y='{}'>{} {}</text>", lw + bw + 4, y + 12,
                     std::isfinite(v) ? fmt::format("{:.{}f}", v, db_colours ? 1 : 3) : "∞", unit);
  }
  return s + "</svg>";
}

std::string html_page(const std::string& title, const std::string& body) {
  return "<!doctype html><html><head><meta charset='utf-8'><title>" + html_escape(title) +
         "</title><style>body{font-family:sans-serif;max-width:820px;margin:24px auto;color:#222}"
         "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "th{background:#f3f3f3}td:first-child{text-align:left}code{background:#f3f3f3;padding:1px 4px;white-space:pre-wrap;word-break:break-all}</style>"
         "</head><body><h1>" + html_escape(title) + "</h1>" + body + "</body></html>\n";
}

namespace {

// Per-channel [min, max] of one site as vertical bars around zero.
std::string svg_channels(const std::string& key, const nlohmann::json& c) {
  auto mn = c["min"].get<std::vector<float>>(), mx = c["max"].get<std::vector<float>>();
  size_t n = mn.size();
  if (n == 0) return "";
  double amax = 1e-9;
  for (size_t i = 0; i < n; i++) amax = std::max({amax, (double)std::fabs(mn[i]), (double)std::fabs(mx[i])});
  int w = 760, h = 140, mid = h / 2;
  double bw = (double)(w - 60) / n;
  std::string s = fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-size='11'>", w, h + 16);
  s += fmt::format("<line x1='50' y1='{}' x2='{}' y2='{}' stroke='#999'/>", mid, w - 10, mid);
  s += fmt::format("<text x='2' y='12'>{:.3g}</text><text x='2' y='{}'>{:.3g}</text>", amax, h - 2, -amax);
  for (size_t i = 0; i < n; i++) {
    double y0 = mid - mx[i] / amax * (mid - 4), y1 = mid - mn[i] / amax * (mid - 4);
    s += fmt::format("<rect x='{:.1f}' y='{:.1f}' width='{:.2f}' height='{:.1f}' fill='#5b8dd6'/>", 50 + i * bw, y0,
                     std::max(bw - 0.5, 0.5), std::max(y1 - y0, 0.5));
  }
  s += fmt::format("<text x='50' y='{}'>{} channels of {} (min..max per channel)</text>", h + 12, n, html_escape(key));
  return s + "</svg>";
}

// Sites whose widest channel is furthest from the typical one: where outliers live.
std::vector<std::string> outlier_sites(const nlohmann::json& channels, size_t k) {
  std::vector<std::pair<double, std::string>> score;
  for (auto& [key, c] : channels.items()) {
    auto mn = c["min"].get<std::vector<float>>(), mx = c["max"].get<std::vector<float>>();
    std::vector<double> r;
    for (size_t i = 0; i < mn.size(); i++) r.push_back(std::max(std::fabs(mn[i]), std::fabs(mx[i])));
    if (r.empty()) continue;
    std::vector<double> sorted = r;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    double med = std::max(sorted[sorted.size() / 2], 1e-12);
    score.push_back({*std::max_element(r.begin(), r.end()) / med, key});
  }
  std::sort(score.rbegin(), score.rend());
  std::vector<std::string> out;
  for (size_t i = 0; i < std::min(k, score.size()); i++) out.push_back(score[i].second);
  return out;
}

// The weight error each fold caused (passes record {"folds": [{"weights": {name: {sqnr_db_before, sqnr_db_after}}}]}).
struct FoldRow {
  std::string pass, weight;
  nlohmann::json before, after;
};
std::vector<FoldRow> fold_rows(const nlohmann::json& notes) {
  std::vector<FoldRow> out;
  if (!notes.is_object()) return out;
  for (auto& [pass, note] : notes.items()) {
    if (!note.is_object() || !note.contains("folds")) continue;
    for (auto& f : note["folds"])
      if (f.contains("weights"))
        for (auto& [w, e] : f["weights"].items())
          if (e.is_object()) out.push_back({pass, w, e.value("sqnr_db_before", nlohmann::json()), e.value("sqnr_db_after", nlohmann::json())});
  }
  return out;
}

// Lines naming the calibration and evaluation data (spec, bytes, sha256) and the warnings.
std::vector<std::string> data_lines(const nlohmann::json& r) {
  std::vector<std::string> out;
  for (auto [key, what] : {std::pair{"calibration", "Calibration data"}, std::pair{"evaluation", "Evaluation data"}}) {
    const auto it = r.find(key);
    if (it == r.end() || !it->is_object()) continue;
    out.push_back(fmt::format("{}: {} ({} bytes, sha256 {})", what, it->value("spec", std::string("?")),
                              it->value("bytes", nlohmann::json()).dump(), it->value("sha256", std::string("?"))));
  }
  if (r.contains("warnings") && r["warnings"].is_array())
    for (auto& w : r["warnings"])
      if (w.is_string()) out.push_back("Warning: " + w.get<std::string>());
  return out;
}

}  // namespace

void write_report(const std::string& dir, const nlohmann::json& r) {
  make_dirs(dir);
  write_file_atomic(dir + "/report.json", r.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");

  const auto& hl = r["headline"];
  std::string md = fmt::format("# {}\n\n", r.value("title", "tquant report"));
  md += "| | " + std::string(hl.contains("metric") ? hl["metric"].get<std::string>() : "metric") +
        " | KLD mean | KLD p99 | top-1 agree | size (bytes) | bits/weight |\n|---|---|---|---|---|---|---|\n";
  for (const char* row : {"fp32", "quantized"}) {
    if (!hl.contains(row)) continue;
    const auto& x = hl[row];
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", row, num(x.value("value", nlohmann::json())),
                      num(x.value("kld_mean", nlohmann::json()), 5), num(x.value("kld_p99", nlohmann::json()), 5),
                      num(x.value("top1_agree", nlohmann::json())), num(x.value("model_bytes", nlohmann::json()), 0),
                      num(x.value("bits_per_weight", nlohmann::json()), 2));
  }
  md += "\nRecipe: `" + r.value("recipe", std::string("?")) + "`. Passes: `" + r["passes"].dump() + "`\n";
  for (auto& line : data_lines(r)) md += "\n" + line + "\n";
  if (r.contains("saturated")) md += fmt::format("\nValues clamped by static ranges during evaluation: {}\n", r["saturated"].dump());
  md += "\n## Worst sites (lowest SQNR)\n\n| site | bits | scheme | calibrator | SQNR dB | clamped |\n|---|---|---|---|---|---|\n";
  std::vector<nlohmann::json> sites(r["sites"].begin(), r["sites"].end());
  std::sort(sites.begin(), sites.end(), [](const nlohmann::json& a, const nlohmann::json& b) { return a["sqnr_db"].get<double>() < b["sqnr_db"].get<double>(); });
  for (size_t i = 0; i < std::min<size_t>(10, sites.size()); i++)
    md += fmt::format("| {} | {} | {} | {} | {} | {} |\n", sites[i]["key"].get<std::string>(), sites[i]["bits"].dump(),
                      sites[i]["scheme"].get<std::string>(), sites[i]["calibrator"].get<std::string>(),
                      num(sites[i]["sqnr_db"], 1), sites[i]["saturated"].dump());
  md += "\n## Weights\n\n| tensor | bits | granularity | SQNR dB |\n|---|---|---|---|\n";
  for (auto& w : r["weights"])
    md += fmt::format("| {} | {} | {} | {} |\n", w["name"].get<std::string>(), w["bits"].dump(), w["gran"].get<std::string>(),
                      num(w["sqnr_db"], 1));
  auto folds = fold_rows(r.value("notes", nlohmann::json()));
  if (!folds.empty()) {
    md += "\n## Folds: weight SQNR before → after (activation-weighted, per-row RTN)\n\n| pass | weight | before dB | after dB |\n|---|---|---|---|\n";
    for (auto& f : folds) md += fmt::format("| {} | {} | {} | {} |\n", f.pass, f.weight, num(f.before, 1), num(f.after, 1));
  }
  write_file_atomic(dir + "/report.md", md);

  // HTML: the same tables plus charts.
  std::string h = "<table><tr><th></th><th>" + html_escape(hl.value("metric", "metric")) +
       "</th><th>KLD mean</th><th>KLD p99</th><th>top-1 agree</th><th>size (bytes)</th><th>bits/weight</th></tr>";
  for (const char* row : {"fp32", "quantized"}) {
    if (!hl.contains(row)) continue;
    const auto& x = hl[row];
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", row,
                     num(x.value("value", nlohmann::json())), num(x.value("kld_mean", nlohmann::json()), 5),
                     num(x.value("kld_p99", nlohmann::json()), 5), num(x.value("top1_agree", nlohmann::json())),
                     num(x.value("model_bytes", nlohmann::json()), 0), num(x.value("bits_per_weight", nlohmann::json()), 2));
  }
  h += "</table><p>Recipe <code>" + html_escape(r.value("recipe", std::string("?"))) + "</code>; passes <code>" +
       html_escape(r["passes"].dump()) + "</code></p>";
  for (auto& line : data_lines(r)) h += "<p>" + html_escape(line) + "</p>";
  std::vector<std::pair<std::string, double>> wbars, sbars;
  for (auto& w : r["weights"]) wbars.push_back({w["name"].get<std::string>(), w["sqnr_db"].get<double>()});
  for (auto& s : r["sites"]) sbars.push_back({s["key"].get<std::string>(), s["sqnr_db"].get<double>()});
  h += "<h2>Activation sites: SQNR</h2>" + svg_bars(sbars, "dB", true);
  h += "<h2>Weights: SQNR</h2>" + svg_bars(wbars, "dB", true);
  if (r.contains("channels")) {
    h += "<h2>Per-channel activation ranges</h2><p>Sites whose widest channel stands furthest above the median channel.</p>";
    for (auto& key : outlier_sites(r["channels"], 4)) h += "<p>" + svg_channels(key, r["channels"][key]) + "</p>";
  }
  h += "<h2>Worst sites</h2><table><tr><th>site</th><th>bits</th><th>scheme</th><th>calibrator</th><th>SQNR dB</th><th>clamped</th></tr>";
  for (size_t i = 0; i < std::min<size_t>(10, sites.size()); i++)
    h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                     html_escape(sites[i]["key"].get<std::string>()), sites[i]["bits"].dump(),
                     sites[i]["scheme"].get<std::string>(), sites[i]["calibrator"].get<std::string>(),
                     num(sites[i]["sqnr_db"], 1), sites[i]["saturated"].dump());
  h += "</table>";
  if (!folds.empty()) {
    h += "<h2>Folds: weight SQNR before → after</h2><p>Activation-weighted, per-row round-to-nearest.</p>"
         "<table><tr><th>pass</th><th>weight</th><th>before dB</th><th>after dB</th></tr>";
    for (auto& f : folds)
      h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", html_escape(f.pass), html_escape(f.weight),
                       num(f.before, 1), num(f.after, 1));
    h += "</table>";
  }
  write_file_atomic(dir + "/report.html", html_page(r.value("title", "tquant report"), h));
}

}  // namespace tq
