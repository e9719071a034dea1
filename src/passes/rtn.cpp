// Round-to-nearest baselines (docs/methods.md §5.1–5.4): weights per row, group or
// tensor from their own ranges; activations per tensor (static, from a
// calibrator) or per token (dynamic).
#include "core/error.h"
#include "passes/pass.h"
#include "quant/calibrator.h"
#include "quant/weights.h"

namespace tq {

static void run_rtn(PassContext& ctx, const nlohmann::json& p) {
  Model& m = ctx.model;
  int wb = p["w_bits"], ab = p["a_bits"];
  bool head = p["head"];
  if (wb > 0) {
    QuantSpec ws;
    ws.bits = wb;
    ws.scheme = scheme_from_string(p["w_scheme"]);
    ws.gran = p["w_gran"] == "group" ? Gran::group : gran_from_string(p["w_gran"]);
    ws.group = p["group"];
    CalibOptions wc{calib_from_string(p["w_calibrator"]), p["percentile"]};
    for (int l : ctx.layers())
      for (auto& nl : block_linears(m.blocks[l]))
        ctx.plan.weights[weight_name(l, nl.slot)] = fit_weight(nl.lin->w, ws, wc);
    if (head && ctx.head()) {
      if (m.cfg.tied_head) {
        ctx.plan.notes["rtn"] = "head shares the token embedding: kept in float";
      } else {
        ctx.plan.weights["output.weight"] = fit_weight(m.head.w, ws, wc);
      }
    }
  }
  if (ab > 0) {
    QuantSpec as;
    as.bits = ab;
    as.scheme = scheme_from_string(p["a_scheme"]);
    const bool dynamic = p["a_gran"] != "tensor", per_head = p["a_gran"] == "token_head";
    CalibOptions ac{calib_from_string(p["calibrator"]), p["percentile"]};
    std::vector<Site> sites = parse_sites(p["sites"].get<std::string>());
    auto plan_site = [&](Site s, int layer) {
      QuantSpec q = as;
      if (p["qkv_scheme"] != "same" && (s == Site::q || s == Site::k || s == Site::v))
        q.scheme = scheme_from_string(p["qkv_scheme"]);
      std::string key = site_key(s, layer);
      auto prev = ctx.plan.sites.find(key);
      if (prev != ctx.plan.sites.end()) {  // keep a transform an earlier pass put into the quantize op
        q.pre_inv = prev->second.pre_inv;
        q.pre_shift = prev->second.pre_shift;
      }
      if (dynamic) {
        q.gran = s == Site::probs ? Gran::tensor : Gran::row;
        if (per_head && (s == Site::q || s == Site::k || s == Site::v)) {  // each head's slice of the token
          q.gran = Gran::group;
          q.group = m.cfg.head_dim;
        }
        q.dynamic = true;
        q.calibrator = "dynamic";
      } else {
        calibrate_tensor(site_stats(ctx.stats(), s, layer).hist, q, ac);
      }
      ctx.plan.sites[key] = q;
    };
    for (Site s : sites) {
      if (s == Site::head_in) {
        if (head && ctx.head()) plan_site(s, -1);
        continue;
      }
      for (int l : ctx.layers()) plan_site(s, l);
    }
  }
}

PassDef rtn_pass() {
  return {"rtn",
          "round-to-nearest: weights from their own ranges, activations per tensor from a calibrator or per token",
          {
              {"w_bits", 8, "weight bits (0: weights stay float)", {}, 0, 8},
              {"w_scheme", "sym", "weight quantizer", {"sym", "asym"}},
              {"w_gran", "row", "weight granularity", {"row", "group", "tensor"}},
              {"group", 128, "group size along the input dimension (w_gran group)", {}, 1, 1 << 20},
              {"w_calibrator", "minmax", "weight range choice", {"minmax", "percentile", "mse", "kl", "pmse"}},
              {"a_bits", 8, "activation bits (0: activations stay float)", {}, 0, 8},
              {"a_scheme", "asym", "activation quantizer", {"sym", "asym"}},
              {"a_gran", "tensor",
               "static per tensor, dynamic per token, or dynamic per token and, at q, k, v, per head (token_head)",
               {"tensor", "token", "token_head"}},
              {"qkv_scheme", "same", "the attention operands' quantizer (same: a_scheme)", {"same", "sym", "asym"}},
              {"calibrator", "minmax", "activation range choice", {"minmax", "percentile", "mse", "kl", "pmse"}},
              {"percentile", 0.9999, "quantile for the percentile calibrator", {}, 0.5, 1.0},
              {"sites", "qkv_in,o_in,up_in,down_in,head_in", "activation sites to quantize", {}},
              {"head", true, "quantize the output head (weights and head_in)", {}},
          },
          run_rtn, [](const nlohmann::json&) { return true; }};
}

}  // namespace tq
