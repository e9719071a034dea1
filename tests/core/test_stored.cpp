// Tensors that stay in their file's type: the half-precision kernels against
// their plain reference on every instruction set, and lazily loaded models
// against the same models loaded as f32.
#include <gtest/gtest.h>

#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "export/gguf_writer.h"
#include "io/ggml_types.h"
#include "io/gguf.h"
#include "io/load.h"
#include "kernels/gemm_half.h"
#include "kernels/kernel_test.h"
#include "nn/forward.h"
#include "nn/random_model.h"
#include "test_util.h"

namespace tq {

namespace {

std::string h_name(Half h) { return h == Half::f16 ? "f16" : "bf16"; }

std::vector<uint16_t> random_halves(int64_t n, Half h, uint64_t seed) {
  Rng r(seed);
  std::vector<uint16_t> w(n);
  for (auto& v : w) {
    float f = (float)r.normal() * 0.5f;
    v = h == Half::f16 ? f32_to_f16(f) : f32_to_bf16(f);
  }
  return w;
}

class HalfKernel : public ::testing::TestWithParam<Isa> {};

// Every path gives the scalar path's bits, and both are the sum within float rounding.
TEST_P(HalfKernel, GemvMatchesScalarBitForBitAndDoubleReference) {
  for (Half h : {Half::f16, Half::bf16})
    for (int64_t C : {1, 16, 37, 100, 256})
      for (int64_t M : {1, 3, 5}) {
        const int64_t O = 70;
        auto w = random_halves(O * C, h, 7 + C);
        Rng r(M);
        std::vector<float> x(M * C), bias(O), y(M * O), ref(M * O);
        for (auto& v : x) v = (float)r.normal();
        for (auto& v : bias) v = (float)r.normal();
        gemv_half(x.data(), M, C, w.data(), O, C, h, bias.data(), y.data(), O, GetParam());
        gemv_half(x.data(), M, C, w.data(), O, C, h, bias.data(), ref.data(), O, Isa::scalar);
        EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * 4)) << "C " << C << " M " << M;
        for (int64_t m = 0; m < M; m++)
          for (int64_t o = 0; o < O; o++) {
            double s = bias[o];
            for (int64_t c = 0; c < C; c++)
              s += (double)(h == Half::f16 ? f16_to_f32(w[o * C + c]) : bf16_to_f32(w[o * C + c])) * x[m * C + c];
            EXPECT_NEAR(y[m * O + o], s, 1e-5 * (1 + std::fabs(s)));
          }
      }
}

TEST_P(HalfKernel, ConvertsEveryHalfExactly) {
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
  std::vector<float> out(65536 + 3);
  for (Half h : {Half::f16, Half::bf16}) {
    half_to_f32(all.data(), out.data(), 65536, h, GetParam());
    for (int i = 0; i < 65536; i++) {
      float ref = h == Half::f16 ? f16_to_f32(all[i]) : bf16_to_f32(all[i]);
      if (std::isnan(ref)) {
        EXPECT_TRUE(std::isnan(out[i])) << i;
      } else {
        EXPECT_EQ(std::memcmp(&out[i], &ref, 4), 0) << h_name(h) << " " << i;
      }
    }
    half_to_f32(all.data() + 1000, out.data(), 7, h, GetParam());  // a tail shorter than a register
    for (int i = 0; i < 7; i++) EXPECT_EQ(out[i], h == Half::f16 ? f16_to_f32(all[1000 + i]) : bf16_to_f32(all[1000 + i]));
  }
}

TQ_FOR_EACH_ISA(HalfKernel);

// A random LLaMA written with its matrices in `type` (norms in f32).
std::string write_model(const test::TempDir& d, const Model& m, uint32_t type, const char* name) {
  GgufWriter w;
  add_llama_metadata(w, m);
  const GgmlTypeInfo* ti = ggml_type_info(type);
  for (auto& nt : named_tensors(const_cast<Model&>(m))) {
    if (nt.t->ndim() < 2) {
      w.add_f32_tensor(nt.name, *nt.t);
      continue;
    }
    std::vector<uint8_t> bytes(nt.t->numel() / ti->block * ti->bytes);
    ti->from_f32(nt.t->ptr(), bytes.data(), nt.t->numel());
    w.add_tensor(nt.name, nt.t->shape, type, std::move(bytes));
  }
  std::string path = d.file(name);
  w.write(path);
  return path;
}

std::vector<float> logits(const Model& m, const std::vector<int32_t>& toks) {
  Workspace ws;
  Input in;
  in.B = 1;
  in.T = (int)toks.size();
  in.tokens = toks.data();
  forward(m, in, ws);
  return ws.logits.data;
}

}  // namespace

// The forward on stored F16 and Q8_0 matrices gives what it gives on the same values in f32.
TEST(StoredModel, LazyForwardMatchesEager) {
  test::TempDir d;
  Model m = random_model(llama_config(64, 2, 4, 2, 96, 300, 64), 3, 0.05f);
  for (uint32_t type : {(uint32_t)ggml_f16, (uint32_t)ggml_q8_0, (uint32_t)ggml_bf16}) {
    std::string path = write_model(d, m, type, "m.gguf");
    Model eager = load_gguf_model(path), lazy = load_gguf_model(path, true);
    EXPECT_FALSE(lazy.blocks[0].q.w.has_values());
    EXPECT_TRUE(lazy.blocks[0].attn_norm.g.has_values());
    EXPECT_EQ(lazy.blocks[1].down.w.stored->type->name, std::string(ggml_type_info(type)->name));
    EXPECT_EQ(lazy.tok_embd.stored_bytes(), eager.tok_embd.numel() / ggml_type_info(type)->block * ggml_type_info(type)->bytes);
    std::vector<int32_t> prefill = {1, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150};
    // Prefill: converted tiles through the same BLAS call shape as f32.
    EXPECT_LT(test::rel_err(logits(lazy, prefill), logits(eager, prefill)), 1e-6) << ggml_type_info(type)->name;
    // Decode: F16/BF16 on gemv_half (another summation order), Q8_0 through tiles.
    std::vector<int32_t> one = {42};
    EXPECT_LT(test::rel_err(logits(lazy, one), logits(eager, one)), 1e-5) << ggml_type_info(type)->name;
    // A block's values load to exactly the eager values and drop back to stored.
    Tensor& w = lazy.blocks[1].up.w;
    w.load_values();
    ASSERT_TRUE(w.has_values());
    EXPECT_EQ(w.data, eager.blocks[1].up.w.data);
    w.drop_values();
    EXPECT_FALSE(w.has_values());
    EXPECT_TRUE(w.stored);
    EXPECT_EQ(w.resident_bytes(), 0);
  }
}

TEST(StoredModel, UsingValuesThatAreNotLoadedIsAnInternalError) {
  test::TempDir d;
  Model m = random_model(llama_config(64, 1, 4, 2, 96, 300, 64), 3, 0.05f);
  Model lazy = load_gguf_model(write_model(d, m, ggml_f16, "m.gguf"), true);
  try {
    (void)lazy.blocks[0].q.w.ptr();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code, 1);
    EXPECT_NE(std::string(e.what()).find("before its stored values were loaded"), std::string::npos);
  }
}

// llama.cpp's own Q4_0 file evaluates the same lazily (the mapped blocks) as expanded to f32.
TEST(StoredModel, LlamaCppQ4FileLazyEqualsEager) {
  TQ_REQUIRE_SHARED("golden/llama.cpp-quants/stories260K-Q4_0.gguf");
  std::string path = test::shared("golden/llama.cpp-quants/stories260K-Q4_0.gguf");
  Model eager = load_gguf_model(path), lazy = load_gguf_model(path, true);
  std::vector<int32_t> toks;
  for (int i = 0; i < 40; i++) toks.push_back(1 + (i * 37) % 500);
  EXPECT_LT(test::rel_err(logits(lazy, toks), logits(eager, toks)), 1e-6);
}

}  // namespace tq
