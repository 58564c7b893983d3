// Time for the SIP layers: a clock that tests can drive by hand, and a timer
// queue that the event loop (or a test) runs. Everything in the transaction
// and dialog layers reads time only through these, so RFC 3261's timers are
// tested on a fake clock without sleeping.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>

namespace sluice::sip {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() const = 0;  // monotonic milliseconds
};

class SteadyClock : public Clock {
 public:
  int64_t now_ms() const override;
};

class FakeClock : public Clock {
 public:
  int64_t now_ms() const override { return now_; }
  void set(int64_t ms) { now_ = ms; }

 private:
  int64_t now_ = 1000000;
};

// One-shot timers keyed by an id; cancel() of a fired or unknown id is a
// no-op. Callbacks may add and cancel timers.
class Timers {
 public:
  explicit Timers(const Clock* clock) : clock_(clock) {}
  using Id = uint64_t;
  Id after(int64_t ms, std::function<void()> fn);
  void cancel(Id id);
  // Runs every timer due at the clock's current time; returns how many.
  size_t run();
  // Milliseconds until the next timer (-1: none), for epoll_wait.
  int64_t next_in_ms() const;
  size_t size() const { return by_id_.size(); }
  const Clock* clock() const { return clock_; }

 private:
  const Clock* clock_;
  Id next_id_ = 1;
  std::multimap<int64_t, Id> by_time_;
  struct Entry {
    std::multimap<int64_t, Id>::iterator at;
    std::function<void()> fn;
  };
  std::unordered_map<Id, Entry> by_id_;
};

// A FakeClock and its Timers advanced together: runs every timer due on the
// way, in order, with the clock set to each timer's deadline.
void advance(FakeClock* clock, Timers* timers, int64_t ms);

}  // namespace sluice::sip
