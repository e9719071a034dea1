// The diagnose report (docs/methods.md §4.5): for every site, how much of the
// per-tensor quantization error comes from range amplification by outliers,
// ranked, with the channels responsible; as JSON, Markdown, HTML and a text table.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "quant/attribution.h"

namespace tq {

// The figures of a DiagnoseHook run, the sites ranked by amplification error, top_channels each.
nlohmann::json diagnose_json(const DiagnoseHook& h, int top_channels);
// diagnose.json, diagnose.md and diagnose.html in dir (created if needed).
void write_diagnosis(const std::string& dir, const std::string& title, const nlohmann::json& d);
// The headline and the first max_sites sites as a text table.
std::string diagnose_text(const std::string& model, const nlohmann::json& d, int max_sites = 12);

}  // namespace tq
