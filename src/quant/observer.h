// Calibration statistics, gathered by a hook in one streamed pass over the
// calibration data (never holding the activations).
#pragma once
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "nn/forward.h"
#include "quant/histogram.h"

namespace tq {

// "blk.3.qkv_in" for block sites, "head_in" for the head.
std::string site_key(Site s, int layer);
// The inverse for a model of n_layers layers; nullopt for a key site_key does not make.
std::optional<std::pair<Site, int>> parse_site_key(std::string_view key, int n_layers);

struct SiteStats {
  int cols = 0;
  int64_t rows = 0, calls = 0;  // rows seen; forward calls (one per calibration sequence)
  Histogram hist;               // all values of the site (per-tensor calibrators)
  double sum = 0, sumsq = 0;
  // Per channel (column), except for probs whose columns are key positions.
  std::vector<float> col_min, col_max;
  std::vector<double> col_abs_sum;  // Σ|x| (AWQ's mean magnitude)
  std::vector<double> col_mid_sum;  // Σ over calls of (max_t x + min_t x)/2 (OutlierTune's centre)
  // With Observer::clip_ratio ρ < 1: max over calls of |x| after clamping each call to
  // [ρ·min, ρ·max] of that call's whole tensor (OutlierTune's clip, docs/methods.md §2.4).
  std::vector<float> col_clip_absmax;
  // At Observer::col_hist_sites: one histogram per channel (per-channel calibrators, RepQuant §1.2).
  std::vector<Histogram> col_hist;

  double mean() const { return rows ? sum / ((double)rows * cols) : 0; }
  double stddev() const;
  double col_mean_abs(int c) const { return rows ? col_abs_sum[c] / (double)rows : 0; }
  float col_absmax(int c) const { return std::max(std::fabs(col_min[c]), std::fabs(col_max[c])); }
  bool per_channel() const { return !col_min.empty(); }
};

// Records statistics at the chosen sites (all by default).
struct Observer : Hooks {
  std::set<Site> sites;  // empty: every site
  float clip_ratio = 1;  // < 1 also gathers SiteStats::col_clip_absmax
  std::set<Site> col_hist_sites;  // these also gather SiteStats::col_hist
  std::map<std::string, SiteStats> stats;
  void forward(Site site, int layer, float* x, int rows, int cols) override;
};

}  // namespace tq
