// The control plane's side of the sluice.dataplane.v1 link: flow batches
// down (each stamped with a rising generation), media events up. The watch
// stream runs on its own thread and hands events to the event loop. Each time
// the dataplane answers (at start-up, after an outage, after its restart) the
// link lists its flows and the gateway resynchronises: it adopts the flows of
// calls it knows, pushes what is missing and removes what no call owns.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "controlplane/gateway.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace sluice::net {
class Loop;
}

namespace sluice::cp {

class DataplaneLink : public FlowSink {
 public:
  DataplaneLink(const std::string& target, net::Loop* loop);
  ~DataplaneLink() override;
  // Starts the watcher; events and reconnects go to the gateway on the loop.
  void start(Gateway* gateway);
  void stop();

  bool upsert(const std::vector<FlowRule>& rules) override;
  void remove(const std::vector<FlowKey>& keys) override;

  bool connected() const { return connected_.load(); }
  uint64_t generation() const { return generation_; }
  uint64_t flows_sent() const { return flows_sent_; }

 private:
  void watch_loop();
  bool learn_generation();
  // Lists every flow the dataplane has and hands the list to the gateway.
  bool resync();

  std::string target_;
  net::Loop* loop_;
  Gateway* gateway_ = nullptr;
  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<bool> connected_{false}, stopping_{false};
  uint64_t generation_ = 0;  // loop thread only
  uint64_t flows_sent_ = 0;
  std::thread watcher_;
  std::mutex ctx_mu_;
  grpc::ClientContext* watch_ctx_ = nullptr;
};

}  // namespace sluice::cp
