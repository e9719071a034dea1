// The second-order estimate the GGUF allocator uses: the layer-wise error from the Hessian
// equals the plain sum over stored activations; ½ Σ F δ² (and its Kronecker form) predicts the
// exact output KL of a small random perturbation; the same batches give the same bits.
#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "quant/fisher.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "test_util.h"

namespace tq {

TEST(Fisher, LayerwiseErrorEqualsThePlainSum) {
  Rng r(1);
  const int N = 50, C = 24, O = 7;
  std::vector<float> x((size_t)N * C);
  for (auto& v : x) v = (float)r.normal();
  Hessian h;
  h.add(x.data(), 20, C);
  h.add(x.data() + 20 * C, 30, C);  // in pieces, as calibration batches come
  Tensor w({O, C}), wq({O, C});
  for (auto& v : w.data) v = (float)r.normal();
  for (size_t i = 0; i < wq.data.size(); i++) wq.data[i] = w.data[i] + 0.01f * (float)r.normal();
  std::vector<double> rho(O);
  for (auto& v : rho) v = r.uniform();
  double plain = 0;
  for (int t = 0; t < N; t++)
    for (int o = 0; o < O; o++) {
      double y = 0;
      for (int c = 0; c < C; c++) y += ((double)w.row(o)[c] - wq.row(o)[c]) * x[(size_t)t * C + c];
      plain += rho[o] * y * y;
    }
  EXPECT_NEAR(output_error(w, wq, h, rho), plain / N, 1e-9 * plain / N);
}

TEST(Fisher, SecondOrderTermPredictsTheExactKl) {
  test::TempDir d;
  Model fp = random_model(llama_config(32, 2, 4, 2, 64, 300, 64), 3, 0.3f);
  CalibData calib = load_calib(parse_data_spec(test::write_sample_text(d) + "?limit=24"), fp);
  HessianObserver obs;
  Fisher f = fisher_diag(fp, calib.batches, {7, 0}, &obs);
  Fisher again = fisher_diag(fp, calib.batches, {7, 0});
  EXPECT_EQ(again.f.at("blk.1.ffn_up.weight").data, f.f.at("blk.1.ffn_up.weight").data);  // same seed, same bits
  Rng r(9);
  for (const char* name : {"blk.1.ffn_up.weight", "blk.0.attn_v.weight", "output.weight"}) {
    Model m = fp;
    Tensor* t = nullptr;
    for (auto& nt : named_tensors(m))
      if (nt.name == name) t = nt.t;
    ASSERT_TRUE(t);
    Tensor orig = *t;
    for (auto& v : t->data) v += 0.02f * (float)r.normal();
    double diag = 0;
    const Tensor& F = f.f.at(name);
    for (int64_t i = 0; i < t->numel(); i++) diag += 0.5 * F.data[i] * (t->data[i] - orig.data[i]) * (t->data[i] - orig.data[i]);
    std::string site = std::string(name) == "output.weight" ? "head_in"
                                                            : std::string("blk.") + name[4] + "." +
                                                                  site_name(input_site_of(std::string(name).substr(6, std::string(name).size() - 13)));
    const Hessian& h = obs.h.at(site);
    double kron = 0.5 * output_error(orig, *t, h, fisher_row_weights(F, h.mean_square()));
    double exact = calib_kld(m, no_hooks(), fp, calib);
    EXPECT_GT(diag, 0.5 * exact) << name;
    EXPECT_LT(diag, 2.0 * exact) << name;
    EXPECT_GT(kron, 0.5 * exact) << name;
    EXPECT_LT(kron, 2.0 * exact) << name;
  }
}

}  // namespace tq
