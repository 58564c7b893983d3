// The gRPC face of the dataplane (sluice.dataplane.v1.Dataplane), on the
// callback API: unary calls are posted to the control lcore and finished
// from there; watch streams are reactors fed by the control lcore, so no
// gRPC thread ever blocks and no thread exists per watcher.
#pragma once

#include <memory>
#include <mutex>
#include <set>

#include "dataplane/runtime.h"
#include "sluice/dataplane/v1/dataplane.grpc.pb.h"

namespace sluice {

class DataplaneService final : public pb::Dataplane::CallbackService {
 public:
  explicit DataplaneService(Runtime* rt);

  grpc::ServerUnaryReactor* UpsertFlows(grpc::CallbackServerContext* ctx,
                                        const pb::UpsertFlowsRequest* req,
                                        pb::UpsertFlowsResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteFlows(grpc::CallbackServerContext* ctx,
                                        const pb::DeleteFlowsRequest* req,
                                        pb::DeleteFlowsResponse* resp) override;
  grpc::ServerUnaryReactor* ListFlows(grpc::CallbackServerContext* ctx,
                                      const pb::ListFlowsRequest* req,
                                      pb::ListFlowsResponse* resp) override;
  grpc::ServerUnaryReactor* GetFlow(grpc::CallbackServerContext* ctx,
                                    const pb::GetFlowRequest* req, pb::Flow* resp) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx,
                                     const pb::GetStatsRequest* req, pb::Stats* resp) override;
  grpc::ServerWriteReactor<pb::Event>* WatchEvents(grpc::CallbackServerContext* ctx,
                                                   const pb::WatchEventsRequest* req) override;

  class Watcher;
  void broadcast(const pb::Event& ev);
  void forget(Watcher* w);

 private:
  Runtime* rt_;
  std::mutex mu_;
  std::set<Watcher*> watchers_;
};

}  // namespace sluice
