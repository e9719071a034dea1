#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace tq {

using clk = std::chrono::steady_clock;

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  tty_ = isatty(STDERR_FILENO);
  enabled_ = total_ > 0 && !std::getenv("TQ_QUIET");
  start_ = last_ = clk::now();
}

Progress::~Progress() { finish(); }

void Progress::add(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = clk::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if ((tty_ && since > 0.1) || (!tty_ && since > 5.0)) {
    last_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

static std::string fmt_duration(double s) {
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", (int)s / 60, (int)s % 60);
  return fmt::format("{}h{:02d}m", (int)s / 3600, ((int)s % 3600) / 60);
}

void Progress::draw(bool final) {
  double elapsed = std::chrono::duration<double>(clk::now() - start_).count();
  double rate = elapsed > 0 ? done_ / elapsed : 0;
  double frac = total_ ? std::min(1.0, (double)done_ / total_) : 0;
  std::string eta = rate > 0 && !final ? fmt_duration((total_ - done_) / rate) : fmt_duration(elapsed);
  std::string rate_s = rate >= 1000 ? fmt::format("{:.1f}k", rate / 1000) : fmt::format("{:.1f}", rate);
  if (tty_) {
    int width = 30, fill = (int)(frac * width);
    std::string bar(fill, '#');
    bar += std::string(width - fill, '.');
    fmt::print(stderr, "\r{} [{}] {}/{} {} {}/s {} {}{}\x1b[K", label_, bar, done_, total_, unit_, rate_s,
               final ? "in" : "eta", eta, note_.empty() ? "" : "  " + note_);
    if (final) fmt::print(stderr, "\n");
  } else {
    fmt::print(stderr, "{}: {}/{} {} ({:.0f}%), {} {}/s, {} {}{}\n", label_, done_, total_, unit_, frac * 100,
               rate_s, unit_, final ? "took" : "eta", eta, note_.empty() ? "" : ", " + note_);
  }
  std::fflush(stderr);
}

}  // namespace tq
