#include "nn/accuracy.h"

#include <algorithm>

#include "core/error.h"
#include "core/progress.h"
#include "core/threads.h"
#include "nn/kld.h"
#include "nn/ops.h"

namespace tq {

std::vector<Batch> image_batches(const Config& c, const ImageSet& s, int batch) {
  TQ_CHECK_INPUT(c.embed == EmbedKind::patches && c.patch_size > 0, "this model does not take images");
  TQ_CHECK_INPUT(s.channels == c.channels && s.height == c.image_size && s.width == c.image_size,
                 "the model takes {}x{} images with {} channels, the data has {}x{} with {}", c.image_size,
                 c.image_size, c.channels, s.height, s.width, s.channels);
  TQ_CHECK_INPUT((int)c.pixel_mean.size() == c.channels && (int)c.pixel_std.size() == c.channels,
                 "the model has no pixel normalisation for its {} channels", c.channels);
  TQ_CHECK_INPUT(c.patch_dim == c.channels * c.patch_size * c.patch_size, "patch size {} does not give {} values",
                 c.patch_size, c.patch_dim);
  const int T = (c.image_size / c.patch_size) * (c.image_size / c.patch_size);
  std::vector<Batch> out;
  for (int64_t i0 = 0; i0 < s.n; i0 += batch) {
    Batch b;
    b.B = (int)std::min<int64_t>(batch, s.n - i0);
    b.T = T;
    b.patches.resize((size_t)b.B * T * c.patch_dim);
    for (int i = 0; i < b.B; i++) {
      image_patches(b.patches.data() + (size_t)i * T * c.patch_dim, s.image(i0 + i), c.channels, s.height, s.width,
                    c.patch_size, c.pixel_mean.data(), c.pixel_std.data());
      b.labels.push_back(s.labels.empty() ? -1 : s.labels[i0 + i]);
    }
    out.push_back(std::move(b));
  }
  return out;
}

std::vector<Batch> text_batches(const Model& m, const std::vector<TextExample>& ex) {
  TQ_CHECK_INPUT(m.cfg.embed == EmbedKind::tokens && !m.cfg.is_lm(), "this model does not classify text");
  TQ_CHECK_INPUT(!m.tok.empty(), "the model has no tokenizer");
  std::vector<Batch> out(ex.size());
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < ex.size(); i++) {
    Batch& b = out[i];
    b.tokens = encode(m.tok, ex[i].text, true);
    if (m.cfg.max_seq > 0 && (int)b.tokens.size() > m.cfg.max_seq) {
      int32_t last = b.tokens.back();  // keep the closing [SEP]
      b.tokens.resize(m.cfg.max_seq);
      b.tokens.back() = last;
    }
    b.B = 1;
    b.T = (int)b.tokens.size();
    b.labels = {ex[i].label};
  }
  return out;
}

nlohmann::json ClassEval::json() const {
  nlohmann::json j = {{"accuracy", accuracy()}, {"correct", correct}, {"total", total}};
  if (compared) {
    j["kld_mean"] = mean_of(kld);
    j["kld_p99"] = p99_of(kld);
    j["top1_agree"] = top1_agree();
    j["ref_accuracy"] = total ? (double)ref_correct / total : 0;
  }
  return j;
}

ClassEval eval_classifier(const Model& m, const std::vector<Batch>& batches, Hooks& hooks, const Model* ref,
                          Hooks* ref_hooks, const char* label) {
  TQ_CHECK_INPUT(!m.cfg.is_lm(), "accuracy needs a classifier");
  const int V = m.cfg.n_out;
  if (ref) TQ_CHECK_INPUT(ref->cfg.n_out == V, "the reference model has {} classes, this one {}", ref->cfg.n_out, V);
  int64_t total = 0;
  for (auto& b : batches) {
    total += b.B;
    for (int32_t l : b.labels) TQ_CHECK_INPUT(l >= 0 && l < V, "label {} is not one of the model's {} classes", l, V);
  }
  std::vector<ClassEval> res(batches.size());
  Progress prog(label, total, "ex");
  SerialBlas serial;
#pragma omp parallel
  {
    Workspace ws, ref_ws;
    std::vector<double> lp(V), lq(V);
#pragma omp for schedule(dynamic, 1)
    for (size_t k = 0; k < batches.size(); k++) {
      const Batch& b = batches[k];
      ClassEval& r = res[k];
      forward(m, b.input(), ws, hooks);
      if (ref) forward(*ref, b.input(), ref_ws, ref_hooks ? *ref_hooks : no_hooks());
      for (int i = 0; i < b.B; i++) {
        const float* row = ws.logits.row(i);
        int top = (int)(std::max_element(row, row + V) - row);
        r.correct += top == b.labels[i];
        r.total++;
        if (ref) {
          const float* rrow = ref_ws.logits.row(i);
          log_softmax_row(lq.data(), row, V);
          log_softmax_row(lp.data(), rrow, V);
          r.kld.push_back((float)kl_logprobs(lp.data(), lq.data(), V));
          int ref_top = (int)(std::max_element(rrow, rrow + V) - rrow);
          r.top1_same += top == ref_top;
          r.ref_correct += ref_top == b.labels[i];
        }
      }
#pragma omp critical
      prog.add(b.B);
    }
  }
  prog.finish();
  ClassEval out;
  out.compared = ref != nullptr;
  for (auto& r : res) {
    out.correct += r.correct;
    out.total += r.total;
    out.top1_same += r.top1_same;
    out.ref_correct += r.ref_correct;
    out.kld.insert(out.kld.end(), r.kld.begin(), r.kld.end());
  }
  return out;
}

}  // namespace tq
