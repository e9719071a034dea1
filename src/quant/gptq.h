// GPTQ (Frantar et al., ICLR 2023; methods-gptq-awq.md §5.6): a linear's
// columns are rounded one at a time and each column's rounding error is pushed
// onto the columns not yet rounded, weighted by the inverse Hessian of the
// layer-wise squared error ‖(W − Ŵ)X‖², so that what reaches the output is
// smaller than round-to-nearest's. Blocked lazy updates, act-order, dampening,
// dead inputs; the grid it rounds to is any weight format with per-row groups
// of columns: tquant's own quantizers (QuantSpec) or a ggml block type.
//
// gptq() works on one linear given its input's Hessian or the factor of it that
// every linear reading the same input shares.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/model.h"
#include "quant/ggml_fit.h"
#include "quant/hessian.h"
#include "quant/quantizer.h"

namespace tq {

struct GptqOptions {
  double damp = 0.01;     // λ = damp · mean(diag H) added to the diagonal (×10 retries if H is not positive definite)
  int block = 128;        // lazy-update block (rounded up to a multiple of the grid's group)
  bool act_order = true;  // columns by decreasing H_jj; the grid's groups are then fitted up front
};

// What GPTQ rounds to: per row, a grid for every `group()` consecutive columns, fitted from
// the row's current values of that group with the columns' importance (H_jj).
struct GptqGrid {
  virtual ~GptqGrid() = default;
  virtual int group() const = 0;
  virtual void fit(int row, int g, const float* x, const float* importance) = 0;
  virtual float round(int row, int col, float x) const = 0;
};

// A ggml block type as the grid (groups are the type's blocks; the scale search of ggml_fit.h).
struct GgmlGptqGrid : GptqGrid {
  GgmlGptqGrid(uint32_t type, int rows, int cols);
  int group() const override { return grid.block; }
  void fit(int row, int g, const float* x, const float* importance) override;
  float round(int row, int col, float x) const override;
  // The rounded weight in the type: codes of wq (on the grid) with the fitted parameters.
  GgmlTensor encode(const Tensor& wq) const;
  const GgmlGrid& grid;
  uint32_t type;
  int cols;
  std::vector<GgmlBlock> blocks;  // [rows × cols/block]
};

// tquant's own weight quantizer as the grid: `spec` gives bits, scheme and granularity (row or
// group); each group's parameters come from its min-max range when GPTQ reaches it (as
// fit_minmax computes them, so with H ∝ I the result is fit_weight + fake_quant exactly).
struct SpecGptqGrid : GptqGrid {
  SpecGptqGrid(QuantSpec spec, int rows, int cols);
  int group() const override { return spec.gran == Gran::group ? spec.group : cols; }
  void fit(int row, int g, const float* x, const float* importance) override;
  float round(int row, int col, float x) const override;
  QuantSpec spec;  // parameters filled in by fit
  int cols;
};

// What GPTQ needs of an input's Hessian, shared by every linear that reads it (q, k, v) and
// every grid tried on it: the processing order, the upper factor U of the damped inverse in
// that order (Uᵀ U = (H + λI)⁻¹), the importance H_jj and the dead inputs.
struct GptqFactor {
  int n = 0;
  std::vector<int> perm;           // processing order (act-order: decreasing H_jj)
  std::vector<double> u;           // n×n, in processing order
  std::vector<float> importance;   // H_jj per input (before dampening)
  std::vector<bool> dead;          // H_jj = 0
  double damp = 0;                 // the λ used
  GptqOptions opt;
};
GptqFactor gptq_factor(const Hessian& h, const GptqOptions& opt = {});

struct GptqResult {
  Tensor w;             // the rounded weight (values on the grid)
  double loss = 0;      // Σ_j ‖w_j − ŵ_j‖² / (2·U_jj²), GPTQ's own error measure
  double damp = 0;      // the λ used
  int dead = 0;         // inputs with H_jj = 0 (their weights were zeroed)
};

// GPTQ of w [out, in] with H (in × in) of its input, or with its factor.
GptqResult gptq(const Tensor& w, const GptqFactor& f, GptqGrid& grid);
GptqResult gptq(const Tensor& w, const Hessian& h, GptqGrid& grid, const GptqOptions& opt = {});

// The layer-wise error of Ŵ: Σ_o ρ_o (w_o − ŵ_o) H (w_o − ŵ_o)ᵀ / rows(H), the mean over tokens of
// ‖(W − Ŵ)x‖² with output row o weighted by ρ_o (row_weight; empty: 1).
double output_error(const Tensor& w, const Tensor& wq, const Hessian& h, const std::vector<double>& row_weight = {});

}  // namespace tq
