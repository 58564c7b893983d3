// The operator API (sluice.admin.v1.Admin) over the gateway's state. gRPC
// handler threads never touch that state: each request runs as a closure on
// the event loop and waits for it. Watchers get events through bounded
// queues; a slow one loses events (counted), it never blocks signalling.
#pragma once

#include <memory>
#include <string>

#include "controlplane/gateway.h"

namespace grpc {
class Server;
}
namespace sluice::net {
class Loop;
class SipTransport;
}  // namespace sluice::net

namespace sluice::cp {

class DataplaneLink;
class AdminService;

class AdminServer {
 public:
  AdminServer(net::Loop* loop, Gateway* gateway, net::SipTransport* transport, DataplaneLink* link);
  ~AdminServer();
  // Listens on `address` (unix:PATH with mode 0600, or host:port).
  bool start(const std::string& address, std::string* error);
  void stop();
  // Called on the loop thread for every gateway event.
  void publish(const GatewayEvent& ev);

 private:
  std::unique_ptr<AdminService> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace sluice::cp
