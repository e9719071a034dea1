#include "passes/pipeline.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "quant/plan.h"

namespace tq {

std::string whole_model_reason(const Recipe& r, const Model& m) {
  if (m.cfg.post_norm) return "a post-norm model (its folds move scales into the previous block's norm)";
  if (!m.cfg.is_lm()) return "a classifier (block-sequential runs are for language models)";
  for (auto& [p, params] : r.steps)
    if (!p->block_local || !p->block_local(params)) return fmt::format("pass '{}' needs the whole model", p->name);
  return "";
}

std::vector<NamedTensor> block_tensors(Model& m, int layer) {
  std::vector<NamedTensor> out;
  Block& b = m.blocks[layer];
  auto add = [&](const std::string& name, Tensor& t) {
    if (!t.empty()) out.push_back({name, &t});
  };
  for (auto& n : norm_table()) {
    add(block_key(layer, n.name) + ".weight", (b.*n.member).g);
    add(block_key(layer, n.name) + ".bias", (b.*n.member).b);
  }
  for (auto& nl : block_linears(b)) {
    add(block_key(layer, nl.name) + ".weight", nl.lin->w);
    add(block_key(layer, nl.name) + ".bias", nl.lin->b);
  }
  return out;
}

std::vector<Tensor> embed_calibration(const Model& m, const CalibData& calib) {
  std::vector<Tensor> out;
  Workspace ws;
  for (const Batch& b : calib.batches) {
    forward_embed(m, b.input(), ws);
    out.push_back(ws.x);
  }
  return out;
}

void run_recipe_by_block(const Recipe& r, PassContext& ctx, int first, std::vector<Tensor> inputs,
                         const BlockDone& block_done) {
  Model& m = ctx.model;
  const int L = m.cfg.n_layers;
  TQ_ASSERT(first >= 0 && first <= L, "block-sequential run from block {} of {}", first, L);
  Progress prog("quantize", L - first, "block");
  for (int l = first; l < L; l++) {
    auto tensors = block_tensors(m, l);
    for (auto& nt : tensors) nt.t->load_values();
    ctx.set_step(l, &inputs);
    for (auto& [p, params] : r.steps) p->run(ctx, params);
    if (!inputs.empty()) {  // the float block with its folds' transforms: what observe() sees
      const QuantPlan transforms = site_transforms(ctx.plan);  // SimHook keeps a reference
      SimHook sim(transforms, L);
      Workspace ws;
      for (size_t b = 0; b < inputs.size(); b++) {
        const Input in = ctx.calib.batches[b].input();
        forward_embed(m, in, ws);
        std::swap(ws.x.data, inputs[b].data);  // the recorded stream in, the workspace's buffer kept
        forward_block(m, l, in, ws, sim);
        std::swap(ws.x.data, inputs[b].data);
      }
    }
    block_done(l, inputs);
    // The block is written: its values (read back from the file, or made by a fold) are not needed again.
    for (auto& nt : tensors) {
      if (nt.t->stored) {
        nt.t->drop_values();
      } else {
        nt.t->data.clear();
        nt.t->data.shrink_to_fit();
      }
    }
    prog.add();
  }
  prog.finish();
  m.head.w.load_values();
  ctx.set_step(L, &inputs);
  for (auto& [p, params] : r.steps) p->run(ctx, params);
  for (auto& [p, params] : r.steps) {
    nlohmann::json rec = params;
    rec["pass"] = p->name;
    ctx.plan.passes.push_back(rec);
  }
}

}  // namespace tq
