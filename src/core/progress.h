// Progress of long work on stderr: a bar with rate and ETA on a terminal,
// a line every few seconds otherwise (logs, CI). Silent when total is 0 or
// when TQ_QUIET is set.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace tq {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  void add(int64_t n = 1);
  void set_note(std::string note) { note_ = std::move(note); }  // shown after the bar (e.g. "loss 2.31")
  void finish();

 private:
  void draw(bool final);
  std::string label_, unit_, note_;
  int64_t total_, done_ = 0;
  bool tty_, enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace tq
