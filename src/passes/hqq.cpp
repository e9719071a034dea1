// The hqq pass: every block linear at one HQQ rung (uniform HQQ, the baseline
// the mixed-precision passes are measured against).
#include "passes/hqq.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/ranks.h"

namespace tq {

HqqOptions hqq_options(const nlohmann::json& p) {
  HqqOptions o;
  o.iters = p["iters"];
  return o;
}

std::vector<LinearRef> block_weights(Model& m) {
  std::vector<LinearRef> out;
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (auto& nl : block_linears(m.blocks[l])) out.push_back({l, nl.slot, &nl.lin->w});
  return out;
}

void note_hqq(PassContext& ctx, const HqqOptions& o) {
  double n = 0, hqq = 0, ours = 0;
  nlohmann::json short_groups = nlohmann::json::array(), rungs = nlohmann::json::object();
  for (auto& ref : block_weights(ctx.model)) {
    auto it = ctx.plan.weights.find(ref.name());
    if (it == ctx.plan.weights.end()) continue;  // a later block of a block-sequential run
    const QuantSpec& s = it->second;
    int64_t rows = ref.w->dim(0), cols = ref.w->dim(1), numel = rows * cols;
    Rung r{s.bits, s.group};
    n += numel;
    hqq += bpp_hqq(r, rows, cols) * numel;
    ours += bpp_ours(r, rows, cols) * numel;
    rungs[r.name()] = rungs.value(r.name(), 0) + 1;
    if (cols % s.group) short_groups.push_back(fmt::format("{} ({} = {}·{} + {})", ref.name(), cols, cols / s.group,
                                                           s.group, cols % s.group));
  }
  ctx.plan.notes["hqq"] = {
      {"solver", fmt::format("proximal, p {}, beta0 {}, kappa {}, up to {} zero updates; zero rounded for 4 bits",
                             o.p, o.beta0, o.kappa, o.iters)},
      {"early_stop", "per group: stop when the mean |W - W^| does not improve; the best zero is kept [ours]"},
      {"groups", "along the input dimension; a shorter last group keeps its own scale and zero"},
      {"rungs", rungs},
      {"bits_per_weight", {{"hqq_meta8", hqq / n}, {"fp16_params", ours / n}}},
      {"short_last_group", short_groups}};
}

void plan_rungs(PassContext& ctx, const std::vector<std::pair<LinearRef, Rung>>& linears, const HqqOptions& o) {
  const ranks::Share mine = ranks::my_share((int64_t)linears.size());
  std::vector<std::vector<double>> fits(mine.end - mine.begin);
  for (int64_t i = mine.begin; i < mine.end; i++) {
    const auto& [ref, r] = linears[i];
    append_doubles(hqq_fit(*ref.w, r.bits, r.group, o), fits[i - mine.begin]);
  }
  fits = ranks::gather_items((int64_t)linears.size(), fits);
  for (size_t i = 0; i < linears.size(); i++) {
    const double *at = fits[i].data(), *end = at + fits[i].size();
    ctx.plan.weights[linears[i].first.name()] = spec_from_doubles(at, end);
    TQ_ASSERT(at == end, "hqq: {} values left after a fitted spec", end - at);
  }
}

std::vector<std::string> ladder_names() {
  std::vector<std::string> out;
  for (auto& r : hqq_ladder()) out.push_back(r.name());
  return out;
}

namespace {

void run_hqq(PassContext& ctx, const nlohmann::json& p) {
  HqqOptions o = hqq_options(p);
  const Rung r{p["bits"], p["group"]};
  std::vector<std::pair<LinearRef, Rung>> linears;
  for (auto& ref : block_weights(ctx.model))
    if (ctx.whole() || (!ctx.layers().empty() && ref.layer == ctx.layers()[0])) linears.push_back({ref, r});
  plan_rungs(ctx, linears, o);
  note_hqq(ctx, o);
}

}  // namespace

PassDef hqq_pass() {
  return {"hqq",
          "HQQ weight-only quantization of every block linear at one (bits, group) rung",
          {
              {"bits", 4, "weight bits", {}, 2, 8},
              {"group", 64, "group size along the input dimension (the last group may be shorter)", {}, 1, 1 << 20},
              {"iters", 20, "zero-point updates at most (0: min-max with HQQ's zero)", {}, 0, 1000},
          },
          run_hqq, [](const nlohmann::json&) { return true; }};
}

}  // namespace tq
