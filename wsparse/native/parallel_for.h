// A call's work in equal parts over XLA's intra-op thread pool, shared by wsparse's kernels.
//
// The parts are claimed one at a time by whichever thread gets there. The calling thread claims parts too and waits
// only for parts another thread has started, so a busy pool (XLA may run two kernel calls at once, one on each of its
// threads, each waiting for a task queued behind the other) cannot deadlock it. The job is shared, because a pool task
// may start after the call has returned; it then finds no part left and touches nothing else.

#ifndef WSPARSE_NATIVE_PARALLEL_FOR_H_
#define WSPARSE_NATIVE_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace wsparse {

// Runs work(begin, end) over [0, n) in at most `max_parts` parts (1 keeps the call on its thread).
inline void ParallelFor(xla::ffi::ThreadPool& pool, int64_t n, int64_t max_parts,
                        const std::function<void(int64_t, int64_t)>& work) {
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>({max_parts, pool.num_threads(), n}));
  if (parts == 1) {
    work(0, n);
    return;
  }
  struct Job {
    std::function<void(int64_t, int64_t)> work;
    int64_t n, parts, per_part;
    std::atomic<int64_t> next{0}, done{0};
    std::mutex mu;
    std::condition_variable finished;

    void Work() {
      for (int64_t p = next.fetch_add(1); p < parts; p = next.fetch_add(1)) {
        work(p * per_part, std::min(n, (p + 1) * per_part));
        if (done.fetch_add(1) + 1 == parts) {
          std::lock_guard<std::mutex> lock(mu);
          finished.notify_all();
        }
      }
    }
  };
  auto job = std::make_shared<Job>();
  job->work = work;
  job->n = n;
  job->parts = parts;
  job->per_part = (n + parts - 1) / parts;
  for (int64_t p = 1; p < parts; ++p) pool.Schedule([job] { job->Work(); });
  job->Work();
  std::unique_lock<std::mutex> lock(job->mu);
  job->finished.wait(lock, [&] { return job->done.load() == job->parts; });
}

}  // namespace wsparse

#endif  // WSPARSE_NATIVE_PARALLEL_FOR_H_
