// The tquant output directory keeps every code: 4-bit codes two to a byte (odd rows
// too), wider ones a byte each; loading it, eagerly or lazily, gives exactly the
// simulated weights.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "io/tquant_dir.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {
namespace {

TEST(TquantDir, CodesOfEveryWidthReadBackExactly) {
  // hidden 47: ffn_down's rows hold an odd number of codes, so the last byte of a packed row is half used.
  Model m = random_model(llama_config(36, 2, 2, 2, 47, 50, 16), 3, 0.3f);
  struct Kind {
    int bits;
    Scheme scheme;
    Gran gran;
    int group;
    bool packed;
  };
  const Kind kinds[] = {{4, Scheme::asym, Gran::group, 8, true}, {3, Scheme::sym, Gran::group, 16, true},
                        {2, Scheme::asym, Gran::row, 0, true},   {8, Scheme::sym, Gran::row, 0, false},
                        {5, Scheme::asym, Gran::tensor, 0, false}};
  const Kind odd = {4, Scheme::sym, Gran::row, 0, true};
  QuantPlan plan;
  std::map<std::string, int64_t> want_bytes;
  int k = 0;
  for (auto& nt : named_tensors(m)) {
    if (nt.t->ndim() != 2 || nt.name.rfind("blk.", 0) != 0) continue;
    const Kind& kind = nt.t->cols() % 2 ? odd : kinds[k++ % std::size(kinds)];
    QuantSpec q;
    q.bits = kind.bits, q.scheme = kind.scheme, q.gran = kind.gran, q.group = kind.group;
    fit_minmax(nt.t->ptr(), (int)nt.t->rows(), (int)nt.t->cols(), q);
    plan.weights[nt.name] = q;
    want_bytes[nt.name] = nt.t->rows() * (kind.packed ? (nt.t->cols() + 1) / 2 : nt.t->cols());
  }
  ASSERT_GE(k, (int)std::size(kinds));
  test::TempDir d;
  save_tquant_dir(d.file("q"), m, plan);
  SafetensorsFile f = read_safetensors(d.file("q/model.safetensors"));
  for (auto& [name, bytes] : want_bytes) {
    const SafeTensor* t = f.find(name);
    ASSERT_TRUE(t) << name;
    EXPECT_EQ((int64_t)t->bytes.size(), bytes) << name;
  }
  Model sim = simulate_weights(m, plan);
  for (bool lazy : {false, true}) {
    Model l = load_tquant_dir(d.file("q"), nullptr, lazy);
    auto a = named_tensors(l), b = named_tensors(sim);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); i++) {
      if (!want_bytes.count(a[i].name)) continue;
      a[i].t->load_values();
      EXPECT_EQ(a[i].t->data, b[i].t->data) << a[i].name << (lazy ? " (lazy)" : "");
    }
  }
}

}  // namespace
}  // namespace tq
