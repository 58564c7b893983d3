#include "controlplane/net/loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace sluice::net {

namespace {

uint64_t thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000 + uint64_t(ts.tv_nsec) / 1000;
}

}  // namespace

Loop::Loop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  add(wake_, EPOLLIN, [this](uint32_t) {
    uint64_t v;
    while (read(wake_, &v, sizeof v) > 0) {
    }
  });
}

Loop::~Loop() {
  if (wake_ >= 0) close(wake_);
  if (epfd_ >= 0) close(epfd_);
}

bool Loop::add(int fd, uint32_t events, Handler h) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  handlers_[fd] = std::move(h);
  return true;
}

bool Loop::mod(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void Loop::del(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void Loop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t n = write(wake_, &one, sizeof one);
  (void)n;
}

void Loop::stop() {
  post([this] { stopping_ = true; });
}

void Loop::run_once(int max_wait_ms) {
  int64_t next = timers_.next_in_ms();
  int wait = max_wait_ms;
  if (next >= 0 && (wait < 0 || next < wait)) wait = static_cast<int>(next);
  epoll_event evs[64];
  // A look that does not wait first: only when nothing is ready has the
  // loop caught up (a wait that returns late because the process was not
  // scheduled must not count as idle while work queued meanwhile).
  int n = epoll_wait(epfd_, evs, 64, 0);
  if (n == 0) {
    if (idle_hook_) idle_hook_();
    if (wait != 0) n = epoll_wait(epfd_, evs, 64, wait);
    idle_at_us_ = now_us();
  }
  auto t0 = Stall::Clock::now();
  uint64_t cpu0 = thread_cpu_us();
  for (int i = 0; i < n; ++i) {
    auto it = handlers_.find(evs[i].data.fd);
    if (it == handlers_.end()) continue;
    Handler h = it->second;  // a copy: the handler may del() itself
    h(evs[i].events);
  }
  std::vector<std::function<void()>> work;
  {
    std::lock_guard<std::mutex> g(mu_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
  timers_.run();
  turns_.add(t0);
  turns_cpu_.add_us(thread_cpu_us() - cpu0);
}

int64_t Loop::now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

void Loop::run() {
  while (!stopping_) run_once(1000);
}

}  // namespace sluice::net
