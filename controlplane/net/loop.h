// The control plane's event loop: one thread owns every socket, the SIP
// state and the timers. Other threads (gRPC handlers, the dataplane event
// watcher) hand work to it with post(), which wakes the loop through an
// eventfd; nothing else is shared.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "controlplane/net/stall.h"
#include "controlplane/sip/timers.h"

namespace sluice::net {

class Loop {
 public:
  using Handler = std::function<void(uint32_t events)>;
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Watches fd for EPOLLIN/EPOLLOUT/... events; the handler may call del().
  bool add(int fd, uint32_t events, Handler h);
  bool mod(int fd, uint32_t events);
  void del(int fd);

  // Thread-safe: runs fn on the loop thread.
  void post(std::function<void()> fn);
  // Runs until stop(); returns after the current iteration.
  void run();
  void stop();  // thread-safe
  // One iteration, waiting at most max_wait_ms (tests drive the loop this way).
  void run_once(int max_wait_ms);

  sip::Timers& timers() { return timers_; }
  // Each iteration's work (handlers, posted work, timers), not its wait:
  // wall time, and the thread's CPU time. A turn whose wall time is far
  // above its CPU time was preempted (another process had the core).
  const Stall& turns() const { return turns_; }
  const Stall& turns_cpu() const { return turns_cpu_; }
  const sip::Clock& clock() const { return clock_; }
  // CLOCK_MONOTONIC, microseconds.
  static int64_t now_us();
  // When the loop last had nothing to do (now_us() time): a look at its
  // descriptors that did not wait found none ready, or a wait just ended.
  // Whatever the loop reads while it has been busy since then waited at
  // most that long: the overload signal for TCP/TLS, whose bytes carry no
  // usable arrival time (the kernel merges segments queued on a connection
  // and keeps the newest one's time).
  int64_t idle_at_us() const { return idle_at_us_; }
  // Called each time a look that does not wait finds nothing ready: every
  // connection has been read empty (overload control's proof that no
  // standing queue is left on them).
  void set_idle_hook(std::function<void()> fn) { idle_hook_ = std::move(fn); }

 private:
  int epfd_ = -1;
  int wake_ = -1;
  sip::SteadyClock clock_;
  sip::Timers timers_{&clock_};
  std::unordered_map<int, Handler> handlers_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  bool stopping_ = false;
  int64_t idle_at_us_ = 0;
  std::function<void()> idle_hook_;
  Stall turns_, turns_cpu_;
};

}  // namespace sluice::net
