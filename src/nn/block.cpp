#include "nn/block.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace tq {

namespace {

using P = Producer;

const std::array<SiteDef, kNumSites> kSites = {{
    {Site::qkv_in, "qkv_in", {P::by_norm, &Block::attn_norm}, {}},
    {Site::q, "q", {P::by_rows, nullptr, Slot::q}, Slot::k},
    {Site::k, "k", {P::by_rows, nullptr, Slot::k}, Slot::q},
    {Site::v, "v", {P::by_rows, nullptr, Slot::v}, {}},
    {Site::probs, "probs", {}, {}},
    {Site::o_in, "o_in", {P::by_kv_heads, nullptr, Slot::v}, {}},
    {Site::up_in, "up_in", {P::by_norm, &Block::mlp_norm}, {}},
    {Site::down_in, "down_in", {P::by_rows, nullptr, Slot::up, true}, {}},
    {Site::head_in, "head_in", {}, {}},
}};

const std::array<NormDef, 2> kNorms = {{{&Block::attn_norm, "attn_norm"}, {&Block::mlp_norm, "ffn_norm"}}};

const std::array<LinearDef, kNumSlots> kLinears = {{
    {Slot::q, "attn_q", &Block::q, Site::qkv_in, Part::attn_in, Width::q, Width::model, false},
    {Slot::k, "attn_k", &Block::k, Site::qkv_in, Part::attn_in, Width::kv, Width::model, false},
    {Slot::v, "attn_v", &Block::v, Site::qkv_in, Part::attn_in, Width::kv, Width::model, false},
    {Slot::o, "attn_output", &Block::o, Site::o_in, Part::attn_out, Width::model, Width::q, false},
    {Slot::gate, "ffn_gate", &Block::gate, Site::up_in, Part::mlp_in, Width::hidden, Width::model, true},
    {Slot::up, "ffn_up", &Block::up, Site::up_in, Part::mlp_in, Width::hidden, Width::model, false},
    {Slot::down, "ffn_down", &Block::down, Site::down_in, Part::mlp_out, Width::model, Width::hidden, false},
}};

const char* kPartNames[kNumParts] = {"attn_in", "attn_out", "mlp_in", "mlp_out"};

}  // namespace

const char* part_name(Part p) { return kPartNames[(int)p]; }

int width(const Config& c, Width w) {
  switch (w) {
    case Width::model: return c.dim;
    case Width::q: return c.q_dim();
    case Width::kv: return c.kv_dim();
    case Width::hidden: return c.hidden;
  }
  return 0;
}

const std::array<SiteDef, kNumSites>& site_table() { return kSites; }
const char* site_name(Site s) { return kSites[(int)s].name; }

std::optional<Site> site_from_name(std::string_view name) {
  for (auto& d : kSites)
    if (name == d.name) return d.site;
  return std::nullopt;
}

std::vector<Site> parse_sites(std::string_view list) {
  std::vector<Site> out;
  while (!list.empty()) {
    size_t end = std::min(list.find(','), list.size());
    std::string_view name = list.substr(0, end);
    list.remove_prefix(std::min(end + 1, list.size()));
    if (name.empty()) continue;
    auto s = site_from_name(name);
    if (!s) {
      std::string names;
      for (auto& d : kSites) names += (names.empty() ? "" : ", ") + std::string(d.name);
      bad_input("unknown site '{}' ({})", name, names);
    }
    if (std::find(out.begin(), out.end(), *s) == out.end()) out.push_back(*s);
  }
  return out;
}

const std::vector<Site>& norm_fed_sites() {
  static const std::vector<Site> sites = [] {
    std::vector<Site> out;
    for (auto& d : kSites)
      if (d.producer.kind == Producer::by_norm) out.push_back(d.site);
    return out;
  }();
  return sites;
}

const std::array<NormDef, 2>& norm_table() { return kNorms; }
const std::array<LinearDef, kNumSlots>& linear_table() { return kLinears; }

std::optional<Slot> slot_from_name(std::string_view name) {
  for (auto& d : kLinears)
    if (name == d.name) return d.slot;
  return std::nullopt;
}

bool has_linear(const Config& c, Slot s) { return c.gated || !linear_def(s).gated_only; }

const std::vector<Site>& linear_input_sites() {
  static const std::vector<Site> sites = [] {
    std::vector<Site> out;
    for (auto& d : kLinears)
      if (std::find(out.begin(), out.end(), d.input) == out.end()) out.push_back(d.input);
    return out;
  }();
  return sites;
}

std::string block_key(int layer, std::string_view what) { return fmt::format("blk.{}.{}", layer, what); }

std::string weight_name(int layer, Slot s) { return block_key(layer, std::string(linear_def(s).name) + ".weight"); }

std::optional<std::pair<int, std::string_view>> split_block_key(std::string_view key, int n_layers) {
  constexpr std::string_view prefix = "blk.";
  if (key.substr(0, prefix.size()) != prefix) return std::nullopt;
  key.remove_prefix(prefix.size());
  const size_t dot = key.find('.');
  if (dot == 0 || dot == std::string_view::npos || dot + 1 == key.size()) return std::nullopt;
  if (key[0] == '0' && dot > 1) return std::nullopt;  // canonical: "blk.3", never "blk.03"
  int64_t layer = 0;
  for (size_t i = 0; i < dot; i++) {
    if (key[i] < '0' || key[i] > '9') return std::nullopt;
    layer = layer * 10 + (key[i] - '0');
    if (layer >= n_layers) return std::nullopt;
  }
  return std::make_pair((int)layer, key.substr(dot + 1));
}

std::optional<WeightRef> parse_weight_name(std::string_view name, int n_layers) {
  auto split = split_block_key(name, n_layers);
  constexpr std::string_view suffix = ".weight";
  if (!split) return std::nullopt;
  std::string_view rest = split->second;
  if (rest.size() <= suffix.size() || rest.substr(rest.size() - suffix.size()) != suffix) return std::nullopt;
  auto slot = slot_from_name(rest.substr(0, rest.size() - suffix.size()));
  if (!slot) return std::nullopt;
  return WeightRef{split->first, *slot};
}

std::vector<NamedLinear> block_linears(Block& b) {
  std::vector<NamedLinear> out;
  for (auto& d : kLinears) {
    Linear& l = b.*d.member;
    if (!l.w.shape.empty()) out.push_back({d.name, &l, d.slot});
  }
  return out;
}

std::vector<NamedLinear> site_consumers(Block& b, Site site) {
  std::vector<NamedLinear> out;
  for (auto& nl : block_linears(b))
    if (linear_def(nl.slot).input == site) out.push_back(nl);
  return out;
}

}  // namespace tq
