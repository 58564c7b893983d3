// Call admission and overload control for new calls.
//
// Three limits, each answered with 503 by the gateway:
// - max_calls: calls up at once (a site sized for N concurrent calls; never
//   more than kCallCeiling);
// - max_call_rate: new calls per second (a token bucket holding one second's
//   worth, so a burst up to the rate passes);
// - load: the signalling thread is behind. Every UDP datagram carries its
//   kernel arrival time, so the time it queued before the loop read it is
//   known; a message from a TCP/TLS connection counts how long the loop
//   had been busy when it read it (net::Loop::idle_at_us). Like CoDel, the
//   signal is the *minimum* queueing delay over each 100 ms interval: a
//   burst that the loop works off within the interval leaves some datagram
//   with a short wait, a standing queue does not. Each
//   socket is its own queue (the loop serves them in turn), so the minimum
//   is kept per socket and the worst socket's counts: the PBX's responses
//   may go straight through while INVITEs from the phones queue for seconds.
//   A socket the loop read empty at some point in an interval had no
//   standing queue in it, whatever its datagrams waited: one datagram held
//   up by a short stall (a slow disk write) does not refuse calls. For a
//   TCP/TLS listener that moment is the loop finding nothing ready (every
//   connection read empty).
//   Shedding starts when an interval's minimum is above queue_delay_ms and
//   stops after one below half of it. A queue that stands above T1 (500 ms)
//   makes every UAC retransmit its INVITE, which adds load exactly when
//   there is none to spare; refusing new calls early keeps the calls already
//   admitted (their ACKs, BYEs, re-INVITEs) on time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice::cp {

class Admission {
 public:
  struct Limits {
    uint32_t max_calls = 0;        // 0: no limit
    uint32_t max_call_rate = 0;    // per second; 0: no limit
    uint32_t queue_delay_ms = 100; // 0: no load shedding
  };
  enum class Verdict { kAdmit, kMaxCalls, kRate, kOverload };
  static constexpr int64_t kIntervalMs = 100;
  // The most calls one control plane holds, whatever max_calls says.
  static constexpr size_t kCallCeiling = 100000;

  explicit Admission(const Limits& limits) : limits_(limits) {}

  // A message that queued `delay_us` on socket `queue` (a small index, one
  // per listener; delay_us -1: a message without an arrival time, which
  // only moves the clock). Returns +1 when shedding starts, -1 when it
  // stops, 0 otherwise. tick() closes an interval without a message (while
  // shedding, so that it stops when the load is gone).
  int observe(int64_t now_ms, int queue, int64_t delay_us);
  int tick(int64_t now_ms) { return roll(now_ms); }
  // The loop read socket `queue` until it was empty.
  void drained(int queue);
  // A new call (out-of-dialog INVITE) with `calls_up` calls already held,
  // against the state the last observe() or tick() left.
  Verdict admit(int64_t now_ms, size_t calls_up);

  bool shedding() const { return shedding_; }
  // The last closed interval's minimum queueing delay on its worst socket,
  // in milliseconds.
  int64_t delay_ms() const { return last_min_us_ < 0 ? 0 : last_min_us_ / 1000; }
  const Limits& limits() const { return limits_; }

 private:
  // Closes the interval when `now_ms` is past it; returns the transition.
  int roll(int64_t now_ms);

  Limits limits_;
  int64_t interval_start_ms_ = -1;
  // Per socket, the minimum in this interval (-1: no sample from it yet)
  // and whether it was read empty in it.
  std::vector<int64_t> interval_min_us_;
  std::vector<bool> interval_drained_;
  bool track(int queue);
  int64_t last_min_us_ = -1;
  bool shedding_ = false;
  double tokens_ = -1;            // -1: bucket not started
  int64_t tokens_at_ms_ = 0;
};

}  // namespace sluice::cp
