#include "quant/observer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tq {

std::string site_key(Site s, int layer) { return layer < 0 ? site_name(s) : block_key(layer, site_name(s)); }

std::optional<std::pair<Site, int>> parse_site_key(std::string_view key, int n_layers) {
  int layer = -1;
  if (auto split = split_block_key(key, n_layers)) {
    layer = split->first;
    key = split->second;
  }
  auto site = site_from_name(key);
  if (!site || (layer < 0) != (*site == Site::head_in)) return std::nullopt;  // head_in alone is outside the blocks
  return std::make_pair(*site, layer);
}

double SiteStats::stddev() const {
  double n = (double)rows * cols;
  if (n < 2) return 0;
  double m = sum / n;
  return std::sqrt(std::max(0.0, sumsq / n - m * m));
}

void Observer::forward(Site site, int layer, float* x, int rows, int cols) {
  if (!sites.empty() && !sites.count(site)) return;
  SiteStats& st = stats[site_key(site, layer)];
  bool per_channel = site != Site::probs;
  if (st.cols == 0) {
    st.cols = cols;
    if (per_channel) {
      st.col_min.assign(cols, INFINITY);
      st.col_max.assign(cols, -INFINITY);
      st.col_abs_sum.assign(cols, 0.0);
      st.col_mid_sum.assign(cols, 0.0);
      if (clip_ratio < 1) st.col_clip_absmax.assign(cols, 0.0f);
      if (col_hist_sites.count(site)) st.col_hist.assign(cols, Histogram());
    }
  }
  if (per_channel && st.cols != cols)
    run_failed("site {} changed width from {} to {}", site_key(site, layer), st.cols, cols);
  st.hist.add(x, (int64_t)rows * cols);
  if (st.hist.nonfinite) run_failed("site {} produced non-finite activations", site_key(site, layer));
  for (int64_t i = 0; i < (int64_t)rows * cols; i++) st.sum += x[i], st.sumsq += (double)x[i] * x[i];
  if (per_channel) {
    std::vector<float> mn(cols, INFINITY), mx(cols, -INFINITY);
    for (int r = 0; r < rows; r++) {
      const float* xr = x + (int64_t)r * cols;
      for (int c = 0; c < cols; c++) {
        mn[c] = std::min(mn[c], xr[c]);
        mx[c] = std::max(mx[c], xr[c]);
        st.col_abs_sum[c] += std::fabs(xr[c]);
        if (!st.col_hist.empty()) st.col_hist[c].add(xr + c, 1);
      }
    }
    for (int c = 0; c < cols; c++) {
      st.col_min[c] = std::min(st.col_min[c], mn[c]);
      st.col_max[c] = std::max(st.col_max[c], mx[c]);
      st.col_mid_sum[c] += 0.5 * ((double)mn[c] + mx[c]);
    }
    if (clip_ratio < 1) {
      float lo = clip_ratio * *std::min_element(mn.begin(), mn.end());
      float hi = clip_ratio * *std::max_element(mx.begin(), mx.end());
      for (int c = 0; c < cols; c++)
        st.col_clip_absmax[c] = std::max({st.col_clip_absmax[c], std::fabs(std::clamp(mn[c], lo, hi)),
                                          std::fabs(std::clamp(mx[c], lo, hi))});
    }
  }
  st.rows += rows;
  st.calls++;
}

}  // namespace tq
