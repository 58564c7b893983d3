#include "controlplane/dataplane_link.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "controlplane/net/loop.h"
#include "sluice/dataplane/v1/dataplane.grpc.pb.h"

namespace sluice::cp {

namespace dp = ::sluice::dataplane::v1;

namespace {

std::chrono::system_clock::time_point deadline(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

void fill_key(const FlowRule::Key& k, dp::SrtpKey* out) {
  out->set_suite(static_cast<dp::SrtpSuite>(k.suite));
  out->set_master_key(k.key);
  out->set_master_salt(k.salt);
}

}  // namespace

struct DataplaneLink::Stub {
  std::unique_ptr<dp::Dataplane::Stub> rpc;
};

DataplaneLink::DataplaneLink(const std::string& target, net::Loop* loop)
    : target_(target), loop_(loop) {
  channel_ = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  stub_ = std::make_unique<Stub>();
  stub_->rpc = dp::Dataplane::NewStub(channel_);
}

DataplaneLink::~DataplaneLink() { stop(); }

bool DataplaneLink::learn_generation() {
  auto stub = dp::Dataplane::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline(2000));
  dp::GetStatsRequest req;
  dp::Stats st;
  if (!stub->GetStats(&ctx, req, &st).ok()) return false;
  uint64_t g = st.generation(), cur = generation_.load();
  while (g > cur && !generation_.compare_exchange_weak(cur, g)) {
  }
  return true;
}

bool DataplaneLink::resync() {
  auto stub = dp::Dataplane::NewStub(channel_);
  auto present = std::make_shared<std::vector<PresentFlow>>();
  std::string token;
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline(5000));
    dp::ListFlowsRequest req;
    req.set_page_size(10000);
    req.set_page_token(token);
    dp::ListFlowsResponse resp;
    if (!stub->ListFlows(&ctx, req, &resp).ok()) return false;
    for (const dp::Flow& f : resp.flows()) {
      PresentFlow p;
      p.key = {f.spec().key().local_address(), static_cast<uint16_t>(f.spec().key().local_port())};
      p.cookie = f.spec().cookie();
      p.state = f.state();
      present->push_back(std::move(p));
    }
    token = resp.next_page_token();
  } while (!token.empty());
  loop_->post([this, present] { gateway_->resync(*present); });
  return true;
}

void DataplaneLink::start(Gateway* gateway) {
  gateway_ = gateway;
  // The dataplane remembers the highest generation applied; continue above it.
  if (learn_generation() && resync()) connected_ = true;
  sender_ = std::thread([this] { send_loop(); });
  watcher_ = std::thread([this] { watch_loop(); });
}

void DataplaneLink::stop() {
  stopping_ = true;
  {
    std::lock_guard<std::mutex> g(ctx_mu_);
    if (watch_ctx_) watch_ctx_->TryCancel();
  }
  if (watcher_.joinable()) watcher_.join();
  // What was queued still goes out (the calls stay up without us).
  {
    std::lock_guard<std::mutex> g(q_mu_);
    sender_stop_ = true;
  }
  q_cv_.notify_one();
  if (sender_.joinable()) sender_.join();
}

// Flows queued past this many are refused (upsert returns false): the
// dataplane has stopped answering and the resync on its return pushes the
// calls' flows again anyway.
constexpr size_t kMaxQueuedFlows = 1 << 20;
// One RPC carries at most this many flows.
constexpr size_t kMaxRpcFlows = 4096;

bool DataplaneLink::upsert(const std::vector<FlowRule>& rules) {
  {
    std::lock_guard<std::mutex> g(q_mu_);
    if (queued_flows_ + rules.size() > kMaxQueuedFlows) return false;
  }
  Batch b;
  b.upsert = true;
  b.rules = rules;
  enqueue(std::move(b));
  return true;
}

void DataplaneLink::remove(const std::vector<FlowKey>& keys) {
  Batch b;
  b.upsert = false;
  b.keys = keys;
  enqueue(std::move(b));
}

void DataplaneLink::enqueue(Batch b) {
  {
    std::lock_guard<std::mutex> g(q_mu_);
    queued_flows_ += b.upsert ? b.rules.size() : b.keys.size();
    queue_.push_back(std::move(b));
    queue_max_ = std::max(queue_max_, queue_.size());
  }
  q_cv_.notify_one();
}

net::Stall DataplaneLink::rpcs() const {
  std::lock_guard<std::mutex> g(q_mu_);
  return rpcs_;
}

size_t DataplaneLink::queue_max() const {
  std::lock_guard<std::mutex> g(q_mu_);
  return queue_max_;
}

void DataplaneLink::send_loop() {
  for (;;) {
    std::vector<Batch> run;
    {
      std::unique_lock<std::mutex> g(q_mu_);
      q_cv_.wait(g, [this] { return sender_stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything is sent
      // The leading run of one kind, in order: upserts and deletes of the
      // same keys must reach the dataplane in the order they were made.
      bool kind = queue_.front().upsert;
      size_t n = 0;
      while (!queue_.empty() && queue_.front().upsert == kind && n < kMaxRpcFlows) {
        n += kind ? queue_.front().rules.size() : queue_.front().keys.size();
        run.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_flows_ -= n;
    }
    bool refused = false;
    const bool upserts = run.front().upsert;
    // Each upsert batch is one call's (its rules carry the call's id); the
    // fates go back in the batches' order.
    std::vector<BatchFate> fates;
    auto fate = [&fates](const Batch& b, FlowFate f) {
      fates.push_back({b.rules.front().cookie, f});
    };
    if (send(run, &refused)) {
      if (upserts)
        for (const Batch& b : run) fate(b, FlowFate::kTaken);
    } else if (refused && run.size() > 1) {
      // One call's bad flow, or the flows that do not fit, refuse the whole
      // RPC: send each call's batch on its own so that only that call's is
      // refused.
      for (const Batch& b : run)
        fate(b, send({b}, &refused) ? FlowFate::kTaken
                : refused           ? FlowFate::kRefused
                                    : FlowFate::kUnreached);
    } else if (upserts) {
      for (const Batch& b : run) fate(b, refused ? FlowFate::kRefused : FlowFate::kUnreached);
    }
    if (!fates.empty())
      loop_->post([this, fates = std::move(fates)] { gateway_->flow_fates(fates); });
    std::lock_guard<std::mutex> g(q_mu_);
    if (sender_stop_) {  // shutting down with the dataplane away: give up
      queue_.clear();
      queued_flows_ = 0;
      return;
    }
  }
}

bool DataplaneLink::send(const std::vector<Batch>& run, bool* refused) {
  dp::Dataplane::Stub* stub = stub_->rpc.get();
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline(2000));
  grpc::Status st;
  auto t0 = net::Stall::Clock::now();
  if (run.front().upsert) {
    dp::UpsertFlowsRequest req;
    req.set_generation(++generation_);
    std::vector<const std::vector<FlowRule>*> batches;
    for (const Batch& b : run) batches.push_back(&b.rules);
    const std::vector<const FlowRule*> rules = merge_upserts(batches);
    const size_t n = rules.size();
    for (const FlowRule* rule : rules) {
      const FlowRule& r = *rule;
      dp::FlowSpec* f = req.add_flows();
      f->mutable_key()->set_local_address(r.local_addr);
      f->mutable_key()->set_local_port(r.local_port);
      f->set_kind(static_cast<dp::FlowKind>(r.kind));
      f->mutable_expected_peer()->set_address(r.expected_addr.empty() ? "0.0.0.0" : r.expected_addr);
      f->mutable_expected_peer()->set_port(r.expected_port);
      f->set_latch(static_cast<dp::LatchPolicy>(r.latch));
      if (r.latch == 2) f->set_max_senders(r.max_senders);
      f->set_egress_port(r.egress_port);
      f->mutable_egress_source()->set_address(r.src_addr);
      f->mutable_egress_source()->set_port(r.src_port);
      f->mutable_destination()->set_address(r.dst_addr);
      f->mutable_destination()->set_port(r.dst_port);
      f->mutable_inactivity_timeout()->set_seconds(r.timeout_s);
      f->set_dscp(r.dscp);
      if (r.ttl_reset) {
        f->set_ttl_policy(dp::TTL_POLICY_RESET);
        f->set_ttl_value(r.ttl_reset);
      }
      f->set_cookie(r.cookie);
      if (r.decrypt.suite) fill_key(r.decrypt, f->mutable_crypto()->mutable_decrypt());
      if (r.encrypt.suite) fill_key(r.encrypt, f->mutable_crypto()->mutable_encrypt());
    }
    dp::UpsertFlowsResponse resp;
    st = stub->UpsertFlows(&ctx, req, &resp);
    if (st.ok()) {
      uint64_t g = resp.generation(), cur = generation_.load();
      while (g > cur && !generation_.compare_exchange_weak(cur, g)) {
      }
      flows_sent_ += n;
    }
  } else {
    dp::DeleteFlowsRequest req;
    req.set_generation(++generation_);
    for (const Batch& b : run)
      for (const FlowKey& k : b.keys) {
        dp::FlowKey* f = req.add_keys();
        f->set_local_address(k.first);
        f->set_local_port(k.second);
      }
    dp::DeleteFlowsResponse resp;
    st = stub->DeleteFlows(&ctx, req, &resp);
  }
  {
    std::lock_guard<std::mutex> g(q_mu_);
    rpcs_.add(t0);
  }
  // Refused for what it carries (a flow the dataplane rejects, or more new
  // flows than it has room for), not for being unable to reach it.
  *refused = st.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
             st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
  if (!st.ok() && run.front().upsert)
    fprintf(stderr, "sluice-controlplane: dataplane UpsertFlows: %s\n", st.error_message().c_str());
  // A delete of flows the dataplane no longer has is as good as done.
  return st.ok() || !run.front().upsert;
}

void DataplaneLink::watch_loop() {
  auto stub = dp::Dataplane::NewStub(channel_);
  while (!stopping_) {
    grpc::ClientContext ctx;
    {
      std::lock_guard<std::mutex> g(ctx_mu_);
      watch_ctx_ = &ctx;
    }
    if (stopping_) break;
    dp::WatchEventsRequest req;
    req.add_types(dp::EVENT_TYPE_TIMED_OUT);
    req.add_types(dp::EVENT_TYPE_LATCHED);
    req.add_types(dp::EVENT_TYPE_PEER_CHANGED);
    auto reader = stub->WatchEvents(&ctx, req);
    dp::Event ev;
    while (reader->Read(&ev)) {
      uint64_t cookie = ev.cookie();
      std::string key = ev.key().local_address() + ":" + std::to_string(ev.key().local_port());
      std::string peer = ev.peer().address() + ":" + std::to_string(ev.peer().port());
      dp::EventType type = ev.type();
      loop_->post([this, cookie, key, peer, type] {
        if (type == dp::EVENT_TYPE_TIMED_OUT)
          gateway_->on_media_timeout(cookie, key);
        else
          gateway_->on_media_latched(cookie, key, peer);
      });
    }
    reader->Finish();
    {
      std::lock_guard<std::mutex> g(ctx_mu_);
      watch_ctx_ = nullptr;
    }
    if (stopping_) break;
    // The stream ended: the dataplane went away. Poll until it answers, then
    // resynchronise (a restarted dataplane has no flows; one that only lost
    // the link still has them).
    connected_ = false;
    while (!stopping_) {
      if (learn_generation() && resync()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    if (stopping_) break;
    connected_ = true;
  }
}

}  // namespace sluice::cp
