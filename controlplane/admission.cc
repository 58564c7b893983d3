#include "controlplane/admission.h"

#include <algorithm>

namespace sluice::cp {

int Admission::roll(int64_t now_ms) {
  if (interval_start_ms_ < 0) {
    interval_start_ms_ = now_ms;
    return 0;
  }
  if (now_ms - interval_start_ms_ < kIntervalMs) return 0;
  // A socket without a datagram in the interval had no queue; more than
  // one interval gone by without a message at all says the load is gone.
  int64_t worst = 0;
  if (now_ms - interval_start_ms_ < 2 * kIntervalMs)
    for (int64_t m : interval_min_us_) worst = std::max(worst, m);
  last_min_us_ = worst;
  interval_start_ms_ = now_ms;
  std::fill(interval_min_us_.begin(), interval_min_us_.end(), -1);
  int64_t target_us = int64_t{limits_.queue_delay_ms} * 1000;
  if (!shedding_ && limits_.queue_delay_ms && last_min_us_ > target_us) {
    shedding_ = true;
    return 1;
  }
  if (shedding_ && (limits_.queue_delay_ms == 0 || last_min_us_ < target_us / 2)) {
    shedding_ = false;
    return -1;
  }
  return 0;
}

int Admission::observe(int64_t now_ms, int queue, int64_t delay_us) {
  int t = roll(now_ms);
  if (delay_us < 0 || queue < 0 || queue >= 64) return t;
  if (static_cast<size_t>(queue) >= interval_min_us_.size()) interval_min_us_.resize(queue + 1, -1);
  int64_t& m = interval_min_us_[queue];
  m = m < 0 ? delay_us : std::min(m, delay_us);
  return t;
}

Admission::Verdict Admission::admit(int64_t now_ms, size_t calls_up) {
  roll(now_ms);
  if (limits_.max_calls && calls_up >= limits_.max_calls) return Verdict::kMaxCalls;
  if (shedding_) return Verdict::kOverload;
  if (limits_.max_call_rate) {
    double cap = limits_.max_call_rate;
    if (tokens_ < 0) {
      tokens_ = cap;
    } else {
      tokens_ = std::min(cap, tokens_ + double(now_ms - tokens_at_ms_) * cap / 1000.0);
    }
    tokens_at_ms_ = now_ms;
    if (tokens_ < 1) return Verdict::kRate;
    tokens_ -= 1;
  }
  return Verdict::kAdmit;
}

}  // namespace sluice::cp
