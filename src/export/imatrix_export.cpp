#include "export/imatrix_export.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "export/gguf_writer.h"
#include "io/ggml_types.h"
#include "nn/block.h"
#include "quant/observer.h"

namespace tq {

namespace {

// Σx² per channel (in double) and the rows seen, at every site a linear reads.
struct SquareSums : Hooks {
  struct Sums {
    std::vector<double> s;
    int64_t rows = 0;
  };
  std::map<std::string, Sums> by_site;
  void forward(Site site, int layer, float* x, int rows, int cols) override {
    bool read = site == Site::head_in;
    for (Site s : linear_input_sites()) read |= s == site;
    if (!read) return;
    Sums& a = by_site[site_key(site, layer)];
    a.s.resize(cols, 0.0);
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < cols; c++) a.s[c] += (double)x[(int64_t)r * cols + c] * x[(int64_t)r * cols + c];
    a.rows += rows;
  }
};

}  // namespace

Imatrix collect_imatrix(const Model& m, const CalibData& calib, const std::string& dataset) {
  TQ_CHECK_INPUT(!calib.empty(), "an importance matrix needs calibration data (--calib)");
  SquareSums sums;
  run_calibration(m, calib, sums);
  Imatrix im;
  im.datasets = {dataset};
  im.chunk_count = (int64_t)calib.batches.size();
  for (const Batch& b : calib.batches) im.chunk_size = std::max<int64_t>(im.chunk_size, b.T);
  auto add = [&](const std::string& weight, const std::string& site) {
    auto it = sums.by_site.find(site);
    TQ_ASSERT(it != sums.by_site.end(), "calibration did not reach {}", site);
    ImatrixEntry e;
    e.sum2.assign(it->second.s.begin(), it->second.s.end());
    e.counts = {(float)it->second.rows};
    im.entries[weight] = std::move(e);
  };
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (const LinearDef& d : linear_table())
      if (has_linear(m.cfg, d.slot)) add(weight_name(l, d.slot), site_key(d.input, l));
  if (m.cfg.is_lm()) add("output.weight", site_key(Site::head_in, -1));
  return im;
}

void write_imatrix(const std::string& path, const Imatrix& im) {
  GgufWriter w;
  w.add_str("general.type", "imatrix");
  w.add_str_array("imatrix.datasets", im.datasets);
  w.add_u32("imatrix.chunk_count", (uint32_t)im.chunk_count);
  w.add_u32("imatrix.chunk_size", (uint32_t)im.chunk_size);
  for (auto& [name, e] : im.entries) {
    const int64_t mats = (int64_t)e.counts.size(), n_in = (int64_t)e.sum2.size() / mats;
    Tensor sum(mats > 1 ? std::vector<int64_t>{mats, n_in} : std::vector<int64_t>{n_in});
    sum.data = e.sum2;
    Tensor counts({mats});
    counts.data = e.counts;
    w.add_f32_tensor(name + ".in_sum2", sum);
    w.add_f32_tensor(name + ".counts", counts);
  }
  w.write(path);
}

}  // namespace tq
