// The control plane's side of the sluice.dataplane.v1 link: flow batches
// down (each stamped with a rising generation), media events up. Flow
// batches are queued by the signalling thread and sent in order by a sender
// thread, so signalling never waits for the dataplane (the bench measured
// the waits at most of the signalling thread's time at 500 calls/s);
// batches queued meanwhile go out as one RPC. The watch stream runs on its
// own thread and hands events to the event loop. Each time
// the dataplane answers (at start-up, after an outage, after its restart) the
// link lists its flows and the gateway resynchronises: it adopts the flows of
// calls it knows, pushes what is missing and removes what no call owns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/gateway.h"
#include "controlplane/net/stall.h"

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

  // Queued, in order; true unless the queue is over its bound (the dataplane
  // has stopped taking batches). Each batch's fate comes back to the
  // gateway on the loop (see FlowSink).
  bool upsert(const std::vector<FlowRule>& rules) override;
  void remove(const std::vector<FlowKey>& keys) override;

  bool connected() const { return connected_.load(); }
  uint64_t generation() const { return generation_.load(); }
  uint64_t flows_sent() const { return flows_sent_.load(); }
  // The flow RPCs (upsert and delete) on the sender thread, and the longest
  // queue of batches waiting for one.
  net::Stall rpcs() const;
  size_t queue_max() const;

 private:
  struct Batch {
    bool upsert = true;
    std::vector<FlowRule> rules;
    std::vector<FlowKey> keys;
  };
  void send_loop();
  // One RPC for `batches` (all of one kind); false when it failed.
  bool send(const std::vector<Batch>& batches, bool* refused);
  void enqueue(Batch b);
  void watch_loop();
  bool learn_generation();
  // Lists every flow the dataplane has and hands the list to the gateway.
  bool resync();

  std::string target_;
  net::Loop* loop_;
  Gateway* gateway_ = nullptr;
  std::shared_ptr<grpc::Channel> channel_;
  struct Stub;                  // the sender thread's gRPC stub, made once
  std::unique_ptr<Stub> stub_;  // (its generated type stays out of this header)
  std::atomic<bool> connected_{false}, stopping_{false};
  std::atomic<uint64_t> generation_{0}, flows_sent_{0};
  mutable std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<Batch> queue_;
  size_t queued_flows_ = 0, queue_max_ = 0;
  bool sender_stop_ = false;
  net::Stall rpcs_;  // under q_mu_
  std::thread sender_, watcher_;
  std::mutex ctx_mu_;
  grpc::ClientContext* watch_ctx_ = nullptr;
};

}  // namespace sluice::cp
