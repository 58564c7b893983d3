#include "controlplane/sip/timers.h"

#include <chrono>

namespace sluice::sip {

int64_t SteadyClock::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Timers::Id Timers::after(int64_t ms, std::function<void()> fn) {
  Id id = next_id_++;
  auto at = by_time_.emplace(clock_->now_ms() + (ms < 0 ? 0 : ms), id);
  by_id_.emplace(id, Entry{at, std::move(fn)});
  return id;
}

void Timers::cancel(Id id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  by_time_.erase(it->second.at);
  by_id_.erase(it);
}

size_t Timers::run() {
  size_t n = 0;
  int64_t now = clock_->now_ms();
  while (!by_time_.empty() && by_time_.begin()->first <= now) {
    Id id = by_time_.begin()->second;
    by_time_.erase(by_time_.begin());
    auto it = by_id_.find(id);
    std::function<void()> fn = std::move(it->second.fn);
    by_id_.erase(it);
    fn();
    ++n;
  }
  return n;
}

int64_t Timers::next_in_ms() const {
  if (by_time_.empty()) return -1;
  int64_t d = by_time_.begin()->first - clock_->now_ms();
  return d < 0 ? 0 : d;
}

void advance(FakeClock* clock, Timers* timers, int64_t ms) {
  int64_t end = clock->now_ms() + ms;
  for (;;) {
    int64_t next = timers->next_in_ms();
    if (next < 0 || clock->now_ms() + next > end) break;
    clock->set(clock->now_ms() + next);
    timers->run();
  }
  clock->set(end);
}

}  // namespace sluice::sip
