#include "dataplane/service.h"

#include <deque>

namespace sluice {

class DataplaneService::Watcher : public grpc::ServerWriteReactor<pb::Event> {
 public:
  static constexpr size_t kQueue = 4096;

  Watcher(DataplaneService* svc, const pb::WatchEventsRequest& req) : svc_(svc) {
    for (int t : req.types()) types_.insert(t);
  }

  // Called by the control lcore with the service's watcher list locked.
  void push(const pb::Event& e) {
    if (!types_.empty() && !types_.count(e.type())) return;
    // Recursive: gRPC may run OnWriteDone inline from StartWrite.
    std::lock_guard<std::recursive_mutex> g(mu_);
    if (finished_) return;
    if (q_.size() >= kQueue) {
      ++lost_;  // a slow watcher loses events; the dataplane never waits
      return;
    }
    q_.push_back(e);
    q_.back().set_lost_before(lost_);
    lost_ = 0;
    if (!writing_) next();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> g(mu_);
    writing_ = false;
    if (!ok) {
      finish();
      return;
    }
    if (!q_.empty()) next();
  }
  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> g(mu_);
    finish();
  }
  void OnDone() override {
    svc_->forget(this);
    delete this;
  }

 private:
  void next() {
    cur_ = std::move(q_.front());
    q_.pop_front();
    writing_ = true;
    StartWrite(&cur_);
  }
  void finish() {
    if (finished_) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  DataplaneService* svc_;
  std::set<int> types_;
  std::recursive_mutex mu_;
  std::deque<pb::Event> q_;
  pb::Event cur_;
  uint64_t lost_ = 0;
  bool writing_ = false;
  bool finished_ = false;
};

DataplaneService::DataplaneService(Runtime* rt) : rt_(rt) {
  rt_->on_event = [this](const pb::Event& ev) { broadcast(ev); };
}

void DataplaneService::broadcast(const pb::Event& ev) {
  std::lock_guard<std::mutex> g(mu_);
  for (Watcher* w : watchers_) w->push(ev);
}

void DataplaneService::forget(Watcher* w) {
  std::lock_guard<std::mutex> g(mu_);
  watchers_.erase(w);
}

grpc::ServerUnaryReactor* DataplaneService::UpsertFlows(grpc::CallbackServerContext* ctx,
                                                        const pb::UpsertFlowsRequest* req,
                                                        pb::UpsertFlowsResponse* resp) {
  auto* r = ctx->DefaultReactor();
  rt_->post([=] { r->Finish(rt_->upsert(*req, resp)); });
  return r;
}

grpc::ServerUnaryReactor* DataplaneService::DeleteFlows(grpc::CallbackServerContext* ctx,
                                                        const pb::DeleteFlowsRequest* req,
                                                        pb::DeleteFlowsResponse* resp) {
  auto* r = ctx->DefaultReactor();
  rt_->post([=] { r->Finish(rt_->remove(*req, resp)); });
  return r;
}

grpc::ServerUnaryReactor* DataplaneService::ListFlows(grpc::CallbackServerContext* ctx,
                                                      const pb::ListFlowsRequest* req,
                                                      pb::ListFlowsResponse* resp) {
  auto* r = ctx->DefaultReactor();
  rt_->post([=] { r->Finish(rt_->list(*req, resp)); });
  return r;
}

grpc::ServerUnaryReactor* DataplaneService::GetFlow(grpc::CallbackServerContext* ctx,
                                                    const pb::GetFlowRequest* req,
                                                    pb::Flow* resp) {
  auto* r = ctx->DefaultReactor();
  rt_->post([=] { r->Finish(rt_->get(*req, resp)); });
  return r;
}

grpc::ServerUnaryReactor* DataplaneService::GetStats(grpc::CallbackServerContext* ctx,
                                                     const pb::GetStatsRequest*,
                                                     pb::Stats* resp) {
  auto* r = ctx->DefaultReactor();
  rt_->post([=] {
    rt_->stats(resp);
    r->Finish(grpc::Status::OK);
  });
  return r;
}

grpc::ServerWriteReactor<pb::Event>* DataplaneService::WatchEvents(
    grpc::CallbackServerContext*, const pb::WatchEventsRequest* req) {
  auto* w = new Watcher(this, *req);
  std::lock_guard<std::mutex> g(mu_);
  watchers_.insert(w);
  return w;
}

}  // namespace sluice
