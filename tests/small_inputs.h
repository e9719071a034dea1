// Helpers a few tests share: a one-line refusal check, a few batches of token ids, and a random
// LLaMA as GGUF with text beside it for the command-line tests.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "export/gguf_writer.h"
#include "nn/random_model.h"
#include "passes/pass.h"
#include "test_util.h"

namespace tq::test {

// f() throws a one-line Error (exit 2) whose message holds `part`.
template <class F>
void expect_refusal(F f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one with: " << part;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(e.exit_code, 2) << msg;
  }
}

// n batches of one sequence of T tokens in [3, 293): token t of batch b is 3 + (b·mb + t·mt + c) mod 290.
inline CalibData token_calib(int n, int T, int mb, int mt, int c) {
  CalibData cd;
  for (int b = 0; b < n; b++) {
    Batch x{1, T, std::vector<int32_t>(T), {}, {}, {}};
    for (int t = 0; t < T; t++) x.tokens[t] = 3 + (b * mb + t * mt + c) % 290;
    cd.batches.push_back(x);
  }
  return cd;
}

// A random LLaMA of config c (seed 5, weights of std 0.2) in d/m.gguf, and write_sample_text's 60 lines.
struct CliModel {
  TempDir d;
  std::string model, text;
  explicit CliModel(const Config& c) : model(d.file("m.gguf")) {
    write_gguf_f32(random_model(c, 5, 0.2f), model);
    text = write_sample_text(d);
  }
};

}  // namespace tq::test
