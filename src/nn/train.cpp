#include "nn/train.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <cinttypes>
#include <numeric>

#include "core/error.h"
#include "core/progress.h"
#include "core/threads.h"
#include "nn/ops.h"

namespace tq {

TokenWindows::TokenWindows(std::vector<int32_t> s, int t) : stream(std::move(s)), T(t) {
  TQ_CHECK_INPUT(T >= 1, "the training context must be at least 1 token");
  TQ_CHECK_INPUT(size() > 0, "{} tokens do not fill one window of {} + 1", stream.size(), T);
}

int64_t TokenWindows::size() const { return stream.empty() ? 0 : ((int64_t)stream.size() - 1) / T; }

void TokenWindows::fill(const int64_t* idx, int n, Batch& b, std::vector<int32_t>& targets) const {
  b = Batch{};
  b.B = n;
  b.T = T;
  b.tokens.resize((size_t)n * T);
  targets.resize((size_t)n * T);
  for (int i = 0; i < n; i++) {
    const int32_t* w = stream.data() + idx[i] * T;
    std::memcpy(b.tokens.data() + (size_t)i * T, w, sizeof(int32_t) * T);
    std::memcpy(targets.data() + (size_t)i * T, w + 1, sizeof(int32_t) * T);
  }
}

std::vector<int32_t> token_stream(const Tokenizer& tok, const std::vector<std::string>& lines) {
  std::vector<std::vector<int32_t>> enc(lines.size());
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < lines.size(); i++) enc[i] = encode(tok, lines[i], true);
  std::vector<int32_t> out;
  for (auto& e : enc) out.insert(out.end(), e.begin(), e.end());
  return out;
}

void LabelledExamples::fill(const int64_t* idx, int n, Batch& b, std::vector<int32_t>& targets) const {
  b = Batch{};
  b.B = n;
  b.T = T;
  for (int i = 0; i < n; i++) {
    if (P > 0) {
      b.patches.insert(b.patches.end(), patches.begin() + idx[i] * T * P, patches.begin() + (idx[i] + 1) * T * P);
    } else {
      b.tokens.insert(b.tokens.end(), tokens.begin() + idx[i] * T, tokens.begin() + (idx[i] + 1) * T);
    }
    b.labels.push_back(labels[idx[i]]);
  }
  targets = b.labels;
}

LabelledExamples labelled_examples(const std::vector<Batch>& batches, int patch_dim) {
  LabelledExamples ex;
  ex.T = batches.empty() ? 0 : batches[0].T;
  for (const Batch& b : batches) {
    // Examples of different lengths cannot share a batch: the block has no padding mask.
    TQ_CHECK_INPUT(b.T == ex.T, "examples of {} and {} positions: training needs examples of one length", ex.T, b.T);
    TQ_CHECK_INPUT((int)b.labels.size() == b.B, "a batch of {} examples has {} labels", b.B, b.labels.size());
    if (b.patches.empty()) {
      ex.tokens.insert(ex.tokens.end(), b.tokens.begin(), b.tokens.end());
    } else {
      ex.P = patch_dim;
      ex.patches.insert(ex.patches.end(), b.patches.begin(), b.patches.end());
    }
    ex.labels.insert(ex.labels.end(), b.labels.begin(), b.labels.end());
  }
  return ex;
}

Sampler::Sampler(int64_t count, uint64_t seed) : rng(seed), n(count) {
  TQ_CHECK_INPUT(n > 0, "no training examples");
}

int64_t Sampler::next() {
  if (cursor == (int64_t)order.size()) {
    order.resize(n);
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = n - 1; i > 0; i--) std::swap(order[i], order[rng.below(i + 1)]);
    cursor = 0;
  }
  return order[cursor++];
}

Trainer::Trainer(Model& m, const BatchSource& d, TrainOptions o, LossHook* h)
    : model(m), data(d), opt(std::move(o)), hook(h), adam(adam_state(m)), sampler(d.size(), opt.seed) {
  TQ_CHECK_INPUT(opt.batch >= 1 && opt.steps >= 1, "training needs a batch of at least 1 and at least 1 step");
  opt.schedule.total = opt.steps;
  grads_ = zeros_like(m);
  ws_.train = true;
}

StepLog Trainer::step() {
  auto t0 = std::chrono::steady_clock::now();
  idx_.resize(opt.batch);
  for (auto& i : idx_) i = sampler.next();
  data.fill(idx_.data(), opt.batch, batch_, targets_);
  const Input in = batch_.input();
  Hooks& h = hook ? *hook : no_hooks();
  if (hook) hook->begin();
  forward(model, in, ws_, h);
  const int rows = (int)ws_.logits.dim(0), V = (int)ws_.logits.dim(1);
  TQ_ASSERT((int)targets_.size() == rows, "the batch has {} targets for {} rows of logits", targets_.size(), rows);
  int scored = 0;
  for (int32_t t : targets_) scored += t >= 0;
  TQ_CHECK_INPUT(scored > 0, "a training batch has no target to score");
  dlogits_.resize((size_t)rows * V);
  double task =
      cross_entropy_forward_backward(dlogits_.data(), ws_.logits.ptr(), targets_.data(), rows, V, 1.0f / scored) /
      scored;
  for (auto& nt : named_tensors(grads_)) std::fill(nt.t->data.begin(), nt.t->data.end(), 0.0f);
  backward(model, grads_, in, ws_, dlogits_.data(), h);
  double norm = clip_grad_norm(grads_, opt.clip);
  float lr = lr_at(opt.schedule, adam.step);
  double term = hook ? hook->value() : 0.0;
  if (!std::isfinite(task + term) || !std::isfinite(norm))
    run_failed("training diverged at step {}: loss {}, gradient norm {} (try a lower --lr)", adam.step + 1, task + term,
               norm);
  adamw_update(model, grads_, adam, opt.adam, lr);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log.push_back({adam.step, lr, task + term, term, norm, secs});
  return log.back();
}

void Trainer::run(int64_t every, const std::function<bool(Trainer&)>& check) {
  const int64_t end = opt.stop_after > 0 ? std::min(opt.stop_after, opt.steps) : opt.steps;
  Progress prog(opt.label, end - adam.step, "step");
  double secs = 0;
  int64_t done = 0;
  while (adam.step < end) {
    StepLog s = step();
    secs += s.seconds;
    done++;
    std::string note = fmt::format("loss {:.4f}", s.loss);
    if (hook) note += fmt::format(" ({} {:.5f})", hook->name(), s.extra);
    note += fmt::format(" lr {:.2e} {:.0f} tok/s", s.lr, done * opt.batch * data.tokens_per_example() / secs);
    prog.set_note(note);
    prog.add(1);
    if (!opt.checkpoint.empty() && opt.checkpoint_every > 0 && s.step % opt.checkpoint_every == 0 && s.step < end)
      save(opt.checkpoint);
    if (every > 0 && check && s.step % every == 0 && !check(*this)) break;
  }
  prog.finish();
  if (!opt.checkpoint.empty()) save(opt.checkpoint);
}

static constexpr const char* kCheckpointFormat = "tquant-train-checkpoint-1";

template <class T>
static SafeTensorOut raw_tensor(const std::string& name, const char* dtype, std::vector<int64_t> shape,
                                const std::vector<T>& v) {
  SafeTensorOut o{name, dtype, std::move(shape), std::vector<uint8_t>(v.size() * sizeof(T))};
  std::memcpy(o.bytes.data(), v.data(), o.bytes.size());
  return o;
}

void Trainer::save(const std::string& path) const {
  std::vector<SafeTensorOut> out;
  for (auto& nt : named_tensors(model)) out.push_back(f32_tensor("model." + nt.name, *nt.t));
  for (auto& nt : named_tensors(const_cast<Model&>(adam.m))) out.push_back(f32_tensor("adam.m." + nt.name, *nt.t));
  for (auto& nt : named_tensors(const_cast<Model&>(adam.v))) out.push_back(f32_tensor("adam.v." + nt.name, *nt.t));
  out.push_back(raw_tensor("sampler.order", "I64", {(int64_t)sampler.order.size()}, sampler.order));
  std::vector<double> rows;
  for (auto& s : log) rows.insert(rows.end(), {(double)s.step, s.lr, s.loss, s.extra, s.grad_norm, s.seconds});
  out.push_back(raw_tensor("log", "F64", {(int64_t)log.size(), 6}, rows));
  out.insert(out.end(), extra.begin(), extra.end());
  nlohmann::json meta = {{"format", kCheckpointFormat},
                         {"step", std::to_string(adam.step)},
                         {"cursor", std::to_string(sampler.cursor)},
                         {"threads", std::to_string(num_threads())},
                         {"rng", fmt::format("{:016x} {:016x} {:016x} {:016x}", sampler.rng.s[0], sampler.rng.s[1],
                                             sampler.rng.s[2], sampler.rng.s[3])}};
  write_safetensors(path, out, meta);
}

void Trainer::resume(const std::string& path) {
  SafetensorsFile f = read_safetensors(path);
  auto meta = [&](const char* key) {
    if (!f.metadata.contains(key) || !f.metadata[key].is_string()) bad_input("{}: checkpoint has no '{}'", path, key);
    return f.metadata[key].get<std::string>();
  };
  if (meta("format") != kCheckpointFormat) bad_input("{}: not a tquant training checkpoint", path);
  auto tensor = [&](const std::string& name, Tensor& dst) {
    const SafeTensor* t = f.find(name);
    if (!t) bad_input("{}: checkpoint has no tensor '{}' (a different model?)", path, name);
    if (t->shape != dst.shape || t->dtype != "F32")
      bad_input("{}: checkpoint tensor '{}' is {} {}, the model has {}", path, name, t->dtype, shape_str(t->shape),
                shape_str(dst.shape));
    dst = f.read_f32(*t);
  };
  for (auto& nt : named_tensors(model)) tensor("model." + nt.name, *nt.t);
  for (auto& nt : named_tensors(adam.m)) tensor("adam.m." + nt.name, *nt.t);
  for (auto& nt : named_tensors(adam.v)) tensor("adam.v." + nt.name, *nt.t);
  try {
    adam.step = std::stoll(meta("step"));
    sampler.cursor = std::stoll(meta("cursor"));
  } catch (const std::logic_error&) {
    bad_input("{}: checkpoint step or cursor is not a number", path);
  }
  if (std::sscanf(meta("rng").c_str(), "%" SCNx64 " %" SCNx64 " %" SCNx64 " %" SCNx64, &sampler.rng.s[0], &sampler.rng.s[1], &sampler.rng.s[2],
                  &sampler.rng.s[3]) != 4)
    bad_input("{}: checkpoint rng state is malformed", path);
  const SafeTensor* order = f.find("sampler.order");
  if (!order || order->dtype != "I64" || order->shape.size() != 1 ||
      (order->numel() != 0 && order->numel() != data.size()))
    bad_input("{}: checkpoint data order does not fit {} examples (different data?)", path, data.size());
  sampler.order.resize(order->numel());
  std::memcpy(sampler.order.data(), order->bytes.data(), order->bytes.size());
  if (sampler.cursor < 0 || sampler.cursor > (int64_t)sampler.order.size())
    bad_input("{}: checkpoint cursor is out of range", path);
  const SafeTensor* lg = f.find("log");
  if (!lg || lg->dtype != "F64" || lg->shape.size() != 2 || lg->shape[1] != 6)
    bad_input("{}: checkpoint has no loss log", path);
  std::vector<double> rows(lg->numel());
  std::memcpy(rows.data(), lg->bytes.data(), lg->bytes.size());
  log.clear();
  for (size_t i = 0; i + 6 <= rows.size(); i += 6)
    log.push_back({(int64_t)rows[i], (float)rows[i + 1], rows[i + 2], rows[i + 3], rows[i + 4], rows[i + 5]});
  if (meta("threads") != std::to_string(num_threads()))
    fmt::print(stderr, "note: {} was written with {} threads, this run has {}: the bits may differ from an "
               "uninterrupted run\n", path, meta("threads"), num_threads());
}

TaskLoss task_loss(const Model& m, const BatchSource& data, int batch, Hooks& hooks) {
  TaskLoss r;
  Workspace ws;
  Batch b;
  std::vector<int32_t> targets;
  std::vector<int64_t> idx;
  double nll = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < data.size(); start += batch) {
    int n = (int)std::min<int64_t>(batch, data.size() - start);
    idx.resize(n);
    std::iota(idx.begin(), idx.end(), start);
    data.fill(idx.data(), n, b, targets);
    forward(m, b.input(), ws, hooks);
    const int V = (int)ws.logits.dim(1);
    for (int64_t row = 0; row < ws.logits.dim(0); row++) {
      int32_t t = targets[row];
      if (t < 0) continue;
      const float* lr = ws.logits.row(row);
      nll += log_softmax_row(nullptr, lr, V) - lr[t];
      correct += std::max_element(lr, lr + V) - lr == t;
      r.rows++;
    }
  }
  if (r.rows) {
    r.loss = nll / r.rows;
    r.accuracy = (double)correct / r.rows;
  }
  return r;
}

Model init_model(const Config& c, uint64_t seed) {
  Model m;
  m.cfg = c;
  validate_config(c, INT64_MAX);
  allocate(m, false, false);
  Rng rng(seed);
  const float resid_std = 0.02f / std::sqrt(2.0f * c.n_layers);
  for (auto& nt : named_tensors(m)) {
    const std::string& n = nt.name;
    bool bias = n.size() > 5 && n.compare(n.size() - 5, 5, ".bias") == 0;
    if (n.find("norm") != std::string::npos || bias) continue;  // gains 1, biases 0 from allocate
    auto w = parse_weight_name(n, c.n_layers);
    bool resid = w && (linear_def(w->slot).part == Part::attn_out || linear_def(w->slot).part == Part::mlp_out);
    float std = resid ? resid_std : 0.02f;
    for (float& v : nt.t->data) v = std * (float)rng.normal();
  }
  return m;
}

std::string loss_csv(const std::vector<StepLog>& log) {
  std::string s = "step,lr,loss,extra,grad_norm,seconds\n";
  for (auto& l : log) s += fmt::format("{},{},{},{},{},{:.4f}\n", l.step, l.lr, l.loss, l.extra, l.grad_norm, l.seconds);
  return s;
}

nlohmann::json optimizer_json(const TrainOptions& opt) {
  return {{"name", "adamw"},        {"lr", opt.schedule.lr},        {"min_lr", opt.schedule.min_lr},
          {"warmup_steps", opt.schedule.warmup}, {"schedule", "linear warm-up, cosine decay"},
          {"weight_decay", opt.adam.weight_decay}, {"beta1", opt.adam.beta1}, {"beta2", opt.adam.beta2},
          {"eps", opt.adam.eps},    {"clip", opt.clip},             {"steps", opt.steps},
          {"batch", opt.batch},     {"seed", opt.seed}};
}

}  // namespace tq
