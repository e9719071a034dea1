// Importance matrices for llama.cpp from tquant's calibration: per linear weight the sum
// of x² of each input channel over the calibration tokens (llama-imatrix's in_sum2) and
// the token count, written as imatrix.gguf (the format io/imatrix.h reads).
#pragma once
#include <string>

#include "io/imatrix.h"
#include "nn/model.h"
#include "passes/pass.h"

namespace tq {

// Every linear of the blocks and the output head; `dataset` names the calibration data.
Imatrix collect_imatrix(const Model& m, const CalibData& calib, const std::string& dataset);
void write_imatrix(const std::string& path, const Imatrix& im);

}  // namespace tq
