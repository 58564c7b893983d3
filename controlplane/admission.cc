#include "controlplane/admission.h"

#include <algorithm>

namespace sluice::cp {

int Admission::roll(int64_t now_ms) {
  if (interval_start_ms_ < 0) {
    interval_start_ms_ = now_ms;
    return 0;
  }
  if (now_ms - interval_start_ms_ < kIntervalMs) return 0;
  // A socket without a datagram in the interval, or read empty in it, had
  // no standing queue. An interval longer than kIntervalMs is closed late
  // because the loop did not run (a stall, or CPU it did not get): its
  // samples still count, so a backlog met after the stall keeps shedding on.
  int64_t worst = 0;
  for (size_t q = 0; q < interval_min_us_.size(); ++q)
    if (!interval_drained_[q]) worst = std::max(worst, interval_min_us_[q]);
  last_min_us_ = worst;
  interval_start_ms_ = now_ms;
  std::fill(interval_min_us_.begin(), interval_min_us_.end(), -1);
  std::fill(interval_drained_.begin(), interval_drained_.end(), false);
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
  if (delay_us < 0 || !track(queue)) return t;
  int64_t& m = interval_min_us_[queue];
  m = m < 0 ? delay_us : std::min(m, delay_us);
  return t;
}

bool Admission::track(int queue) {
  if (queue < 0 || queue >= 64) return false;
  if (static_cast<size_t>(queue) >= interval_min_us_.size()) {
    interval_min_us_.resize(queue + 1, -1);
    interval_drained_.resize(queue + 1, false);
  }
  return true;
}

void Admission::drained(int queue) {
  if (track(queue)) interval_drained_[queue] = true;
}

Admission::Verdict Admission::admit(int64_t now_ms, size_t calls_up) {
  if (calls_up >= kCallCeiling || (limits_.max_calls && calls_up >= limits_.max_calls))
    return Verdict::kMaxCalls;
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
