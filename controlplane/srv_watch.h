// Keeps the gateway's DNS SRV upstreams current: resolves `upstream_srv` on
// its own thread at start-up and again when the records' TTL runs out
// (between 5 s and 300 s; 5 s after a failure, when the last good answer
// stays in use), and hands each answer to the gateway on the event loop.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace sluice::net {
class Loop;
}

namespace sluice::cp {

class Gateway;

class SrvWatch {
 public:
  SrvWatch(std::string name, net::Loop* loop) : name_(std::move(name)), loop_(loop) {}
  ~SrvWatch() { stop(); }
  void start(Gateway* gateway);
  void stop();

 private:
  void run();
  std::string name_;
  net::Loop* loop_;
  Gateway* gateway_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

}  // namespace sluice::cp
