// Parallel loops whose bodies may throw. An exception must not leave an
// OpenMP region (the runtime calls std::terminate), so each iteration runs
// under a catch; after the region the error of the lowest failing index is
// rethrown. That is the error a serial loop would have raised, whatever the
// schedule, so the message is deterministic. Iterations above a failed one
// may be skipped.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>

namespace tq {

class ParallelErrors {
 public:
  // Runs f() for iteration i unless a lower iteration has already failed.
  template <class F>
  void run(int64_t i, F&& f) noexcept {
    if (i > first_.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (i < first_.load(std::memory_order_relaxed)) {
        first_.store(i, std::memory_order_relaxed);
        error_ = std::current_exception();
      }
    }
  }
  // Rethrows the error of the lowest failing iteration, if any (call after the region).
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<int64_t> first_{INT64_MAX};
  std::exception_ptr error_;
  std::mutex mu_;
};

// body(i) for i in [0, n), chunk iterations at a time from a dynamic
// schedule; on one thread when parallel is false.
template <class Body>
void parallel_for(int64_t n, Body&& body, int64_t chunk = 1, bool parallel = true) {
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic, chunk) if (parallel && n > 1)
  for (int64_t i = 0; i < n; i++) errors.run(i, [&] { body(i); });
  errors.rethrow();
}

// body(state, i) with one state per thread made by make_state() (workspaces, buffers).
template <class MakeState, class Body>
void parallel_for_with(int64_t n, MakeState&& make_state, Body&& body, int64_t chunk = 1, bool parallel = true) {
  using State = std::invoke_result_t<MakeState&>;
  ParallelErrors errors;
#pragma omp parallel if (parallel && n > 1)
  {
    std::optional<State> state;
    std::exception_ptr make_error;
    try {
      state.emplace(make_state());
    } catch (...) {
      make_error = std::current_exception();
    }
#pragma omp for schedule(dynamic, chunk)
    for (int64_t i = 0; i < n; i++)
      errors.run(i, [&] {
        if (!state) std::rethrow_exception(make_error);
        body(*state, i);
      });
  }
  errors.rethrow();
}

}  // namespace tq
