// How long a recurring piece of work held the signalling thread: the
// longest time, and how many times it passed each threshold. The counts
// only grow, so a reader (the bench) can take the difference of two
// samples; they explain a latency tail that a mean would hide.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace sluice::net {

class Stall {
 public:
  using Clock = std::chrono::steady_clock;

  void add(Clock::time_point since) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - since).count();
    add_us(us < 0 ? 0 : static_cast<uint64_t>(us));
  }
  void add_us(uint64_t us) {
    ++count_;
    total_us_ += us;
    if (us > max_us_) max_us_ = us;
    if (us > 5000) ++over_5ms_;
    if (us > 20000) ++over_20ms_;
    if (us > 50000) ++over_50ms_;
  }
  // <name>s, <name>_us_total, <name>_max_us, <name>s_over_5ms/_20ms/_50ms.
  void report(const std::string& name, std::map<std::string, uint64_t>* out) const {
    (*out)[name + "s"] = count_;
    (*out)[name + "_us_total"] = total_us_;
    (*out)[name + "_max_us"] = max_us_;
    (*out)[name + "s_over_5ms"] = over_5ms_;
    (*out)[name + "s_over_20ms"] = over_20ms_;
    (*out)[name + "s_over_50ms"] = over_50ms_;
  }

 private:
  uint64_t count_ = 0, total_us_ = 0, max_us_ = 0;
  uint64_t over_5ms_ = 0, over_20ms_ = 0, over_50ms_ = 0;
};

}  // namespace sluice::net
