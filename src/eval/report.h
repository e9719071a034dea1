// Quantization reports: report.json (all figures), report.md (tables) and a
// self-contained report.html (inline SVG, no network).
#pragma once
#include <nlohmann/json.hpp>
#include <map>
#include <string>

#include "nn/forward.h"
#include "passes/pass.h"
#include "quant/observer.h"
#include "quant/plan.h"

namespace tq {

// SQNR of each planned site on live activations: the hook quantizes like the
// simulation and accumulates signal and noise energy per site.
struct SiteErrorHook : Hooks {
  SiteErrorHook(const QuantPlan& plan) : plan_(plan) {}
  void forward(Site site, int layer, float* x, int rows, int cols) override;
  std::map<std::string, std::pair<double, double>> energy;  // site key → (Σx², Σ(x−x̂)²)
  std::map<std::string, int64_t> saturated;

 private:
  const QuantPlan& plan_;
  std::vector<float> ref_;
};

// Every planned site of the simulated model q on the probe data: bits, scheme,
// calibrator, SQNR on live activations and values clamped (quantize's site table).
nlohmann::json site_errors(const Model& q, const QuantPlan& plan, const CalibData& probe);
// The per-weight SQNR between float weights and their plan quantization.
nlohmann::json weight_errors(const Model& fp, const Model& q, const QuantPlan& plan);
// Per-channel min/max of every site (the picture in which outlier channels stand out).
nlohmann::json channel_ranges(const std::map<std::string, SiteStats>& stats);

// HTML pieces shared by the reports: escaping, a horizontal bar chart (inline
// SVG; db_colours marks low SQNR in red), and a self-contained page.
std::string html_escape(const std::string& s);
std::string svg_bars(const std::vector<std::pair<std::string, double>>& rows, const std::string& unit,
                     bool db_colours);
std::string html_page(const std::string& title, const std::string& body);

// Writes report.json, report.md and report.html into dir (created if needed).
// r holds: title, headline{...}, weights[...], sites[...], channels{...}, plan passes.
void write_report(const std::string& dir, const nlohmann::json& r);

}  // namespace tq
