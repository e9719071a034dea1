#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/mmap.h"
#include "core/sha256.h"
#include "text/images.h"
#include "nn/accuracy.h"
#include "nn/kld.h"
#include "nn/perplexity.h"
#include "passes/pass.h"

namespace tq {

CalibData load_calib(const DataSpec& spec, const Model& m) {
  CalibData c;
  if (spec.kind == "text") {
    for (auto& s : text_sequences(m.tok, spec)) {
      Batch b;
      b.B = 1;
      b.T = (int)s.tokens.size();
      b.tokens = s.tokens;
      c.batches.push_back(std::move(b));
    }
  } else if (spec.kind == "mnist") {
    c.batches = image_batches(m.cfg, read_mnist(spec.path, spec), 32);
  } else {
    c.batches = text_batches(m, read_sst2(spec.path, spec));
  }
  if (c.empty()) bad_input("calibration data {} is empty", spec.path);
  return c;
}

CalibData load_calib(const std::string& spec, const Model& m) {
  const DataSpec d = parse_data_spec(spec);
  CalibData c = load_calib(d, m);
  c.source = spec;
  c.provenance = data_provenance(d, spec);
  c.provenance["batches"] = (int64_t)c.batches.size();
  return c;
}

nlohmann::json data_provenance(const DataSpec& spec, const std::string& text) {
  nlohmann::json slice = {{"from", spec.from}, {"to", spec.to}, {"offset", spec.offset}, {"limit", spec.limit}};
  if (spec.kind == "text") slice.update({{"protocol", spec.protocol}, {"ctx", spec.ctx}});
  std::vector<std::string> files;
  if (is_directory(spec.path)) {
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(spec.path, ec))
      if (e.is_regular_file(ec)) files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
  }
  Sha256 h;
  int64_t bytes = 0;
  if (!is_directory(spec.path)) {
    MappedFile f(spec.path);
    h.add(f.bytes().data(), f.bytes().size());
    bytes = (int64_t)f.bytes().size();
  }
  for (auto& name : files) {
    MappedFile f(spec.path + "/" + name);
    h.add(name).add(f.bytes().data(), f.bytes().size());
    bytes += (int64_t)f.bytes().size();
  }
  return {{"spec", text}, {"kind", spec.kind}, {"path", spec.path}, {"slice", slice}, {"bytes", bytes},
          {"sha256", h.hex()}};
}

// The sequences a spec slices, before slicing: its unit's count.
static int64_t sequence_count(const DataSpec& d, const Model& m) {
  if (d.kind == "mnist") return read_mnist(d.path).n;
  if (d.kind == "sst2") return std::max<int64_t>(0, (int64_t)read_lines(d.path).size() - 1);
  if (d.protocol == "chunks") return (int64_t)encode(m.tok, read_text_file(d.path), true).size() / d.ctx;
  return (int64_t)read_lines(d.path).size();
}

std::string calib_eval_overlap(const DataSpec& calib, const nlohmann::json& calib_prov, const DataSpec& eval,
                               const nlohmann::json& eval_prov, const Model& m) {
  if (calib.kind != eval.kind || calib_prov["sha256"] != eval_prov["sha256"] || calib_prov["bytes"] != eval_prov["bytes"])
    return "";
  const bool same_unit = calib.kind != "text" || (calib.protocol == eval.protocol &&
                                                  (calib.protocol == "lines" || calib.ctx == eval.ctx));
  const int64_t nc = sequence_count(calib, m), ne = same_unit ? nc : sequence_count(eval, m);
  auto [cb, ce] = slice_range(nc, calib);
  auto [eb, ee] = slice_range(ne, eval);
  if (same_unit) {
    const int64_t n = std::min(ce, ee) - std::max(cb, eb);
    if (n <= 0) return "";
    return fmt::format("the calibration and evaluation data overlap: {} of the {} sequences of {} (calibration "
                       "[{}, {}), evaluation [{}, {})); the evaluation is not held out",
                       n, nc, calib.path, cb, ce, eb, ee);
  }
  // Different units (lines against chunks, or two ctx): fractions of the file.
  const double lo = std::max((double)cb / std::max<int64_t>(nc, 1), (double)eb / std::max<int64_t>(ne, 1));
  const double hi = std::min((double)ce / std::max<int64_t>(nc, 1), (double)ee / std::max<int64_t>(ne, 1));
  if (hi <= lo) return "";
  return fmt::format("the calibration and evaluation data overlap: about {:.1f} % of {} is in both (calibration "
                     "[{}, {}) of {} {}, evaluation [{}, {}) of {} {}); the evaluation is not held out",
                     100 * (hi - lo), calib.path, cb, ce, nc, calib.kind == "text" ? calib.protocol : "items", eb,
                     ee, ne, eval.kind == "text" ? eval.protocol : "items");
}

double calib_kld(const Model& m, Hooks& hooks, const Model& ref, const CalibData& calib) {
  if (!m.cfg.is_lm()) return mean_of(eval_classifier(m, calib.batches, hooks, &ref, nullptr, "score").kld);
  std::vector<TextSeq> seqs;
  for (const Batch& b : calib.batches)
    for (int i = 0; i < b.B; i++)
      seqs.push_back({std::vector<int32_t>(b.tokens.begin() + (int64_t)i * b.T, b.tokens.begin() + (int64_t)(i + 1) * b.T)});
  return eval_lm(m, seqs, hooks, &ref, nullptr, "score").kld_mean();
}

}  // namespace tq
