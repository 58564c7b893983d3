#include "controlplane/srv_watch.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "controlplane/gateway.h"
#include "controlplane/net/loop.h"
#include "controlplane/net/srv.h"

namespace sluice::cp {

void SrvWatch::start(Gateway* gateway) {
  gateway_ = gateway;
  thread_ = std::thread([this] { run(); });
}

void SrvWatch::stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SrvWatch::run() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!stopping_) {
    lk.unlock();
    auto targets = std::make_shared<std::vector<net::SrvTarget>>();
    uint32_t ttl = 0;
    std::string err, via;
    bool ok = net::resolve_upstream(name_, targets.get(), &ttl, &via, &err);
    if (ok)
      loop_->post([this, targets, via] { gateway_->set_srv_targets(*targets, via); });
    else
      loop_->post([this, err] { gateway_->srv_failed(err); });
    uint32_t wait_s = ok ? std::clamp<uint32_t>(ttl, 5, 300) : 5;
    lk.lock();
    cv_.wait_for(lk, std::chrono::seconds(wait_s), [this] { return stopping_; });
  }
}

}  // namespace sluice::cp
