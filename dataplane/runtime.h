// The running dataplane: EAL resources, workers, the control lcore's loop.
// One instance per process, built by main() from the validated config.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <grpcpp/support/status.h>

#include "dataplane/core/packet.h"
#include "sluice/dataplane/v1/config.pb.h"
#include "sluice/dataplane/v1/dataplane.pb.h"

struct rte_mempool;
struct rte_ring;
struct rte_mbuf;
struct rte_rcu_qsbr;

namespace sluice {

namespace pb = ::sluice::dataplane::v1;

inline constexpr int kBurst = 32;
inline constexpr int kMaxWorkers = 16;

// Per-worker counters: one writer (the worker), summed by readers.
struct alignas(64) WorkerCounters {
  std::atomic<uint64_t> rx{0}, tx{0}, relayed{0}, handed_off{0}, hairpinned{0}, idle_sleeps{0};
  std::atomic<uint64_t> drops[kDropCount] = {};
};

struct alignas(64) Worker {
  uint8_t id = 0;
  unsigned lcore = 0;
  struct RxQueue {
    uint16_t port;  // DPDK port id
    uint16_t queue;
    uint8_t index;  // index into DataplaneView::ports
  };
  std::vector<RxQueue> rxq;
  rte_ring* inbox = nullptr;   // hand-offs from other workers (MP/SC)
  rte_ring* inject = nullptr;  // frames from the control lcore to send (SP/SC)
  rte_ring* punt = nullptr;    // frames for the control lcore (SP/SC)
  rte_ring* events = nullptr;  // WorkerEvent elements (SP/SC)
  WorkerCounters c;
  class Runtime* rt = nullptr;
};

struct PortRuntime {
  std::string name, role, device;
  uint16_t port_id = 0;
  int tap_id = -1;  // DPDK port id of the exception-path TAP, or -1
  std::string tap_name;
  std::vector<uint32_t> addresses;  // all relay addresses on this port
  std::atomic<uint64_t> punted{0}, injected{0};
};

class Runtime {
 public:
  // Builds everything from the config after rte_eal_init; errors name the
  // cause. Does not start workers.
  static std::unique_ptr<Runtime> create(const pb::DataplaneConfig& cfg, std::string* err);
  ~Runtime();

  void start_workers();
  // Runs the control loop on the calling (main) lcore until stop() is called.
  void control_loop();
  void stop() { stop_.store(true, std::memory_order_release); }
  bool stopping() const { return stop_.load(std::memory_order_acquire); }

  // Runs fn on the control lcore (the only table writer) and returns when
  // it has; used by the gRPC service.
  void post(std::function<void()> fn);
  // Runs posted commands once (shutdown path, after control_loop returns).
  void drain_commands() { run_commands(); }

  // Control-lcore-only operations, called through post().
  grpc::Status upsert(const pb::UpsertFlowsRequest& req, pb::UpsertFlowsResponse* resp);
  grpc::Status remove(const pb::DeleteFlowsRequest& req, pb::DeleteFlowsResponse* resp);
  grpc::Status list(const pb::ListFlowsRequest& req, pb::ListFlowsResponse* resp);
  grpc::Status get(const pb::GetFlowRequest& req, pb::Flow* resp);
  void stats(pb::Stats* resp);

  // Event fan-out to watchers (set by the service).
  std::function<void(const pb::Event&)> on_event;

  const pb::DataplaneConfig& config() const { return cfg_; }
  int worker_main(Worker& w);

 private:
  Runtime() = default;
  bool setup_ports(std::string* err);
  bool setup_tap(PortRuntime& p, int idx, std::string* err);
  void handle_punted(rte_mbuf* m);
  void handle_arp(rte_mbuf* m, uint8_t port_idx);
  void send_arp(uint8_t port_idx, uint16_t op, const net::Mac& tha, uint32_t tip,
                const net::Mac& dst_mac);
  void inject(uint8_t port_idx, rte_mbuf* m);
  void resolve(uint32_t ip, uint8_t port_idx, uint64_t now);
  void handle_event(const WorkerEvent& e);
  void periodic(uint64_t now);
  void scan_flows(uint64_t now);
  void emit(pb::Event ev);
  void fill_flow(FlowSlot& s, pb::Flow* f, uint64_t now);
  int port_index(const std::string& name) const;
  bool run_commands();

  pb::DataplaneConfig cfg_;
  DataplaneView view_;
  std::unique_ptr<FlowTable> flows_;
  std::unique_ptr<srtp::CryptoTable> crypto_table_;
  std::unique_ptr<NeighborTable> neighbors_;
  rte_rcu_qsbr* qsbr_ = nullptr;
  rte_mempool* pool_ = nullptr;
  std::vector<std::unique_ptr<PortRuntime>> ports_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_{false};
  uint64_t generation_ = 0;
  uint64_t start_tsc_ = 0;
  uint64_t hz_ = 0;

  std::mutex cmd_mu_;
  std::vector<std::function<void()>> cmds_;

  // Control-lcore-only bookkeeping.
  uint64_t next_periodic_ = 0;
  uint32_t scan_pos_ = 0;
  uint64_t scan_cycle_start_ = 0;
  uint64_t global_drops_reported_[kDropCount] = {};
  struct Pending {
    uint32_t ip;
    uint8_t port;
    uint8_t tries;
    uint64_t last;
  };
  std::vector<Pending> resolving_;
  // SRTP: the config each crypto flow's state points at (by slot index), and
  // replaced configs waiting out a QSBR grace period before they are freed.
  struct CryptoEntry {
    std::shared_ptr<const srtp::CryptoConfig> cfg;
    uint32_t auth_reported = 0;
  };
  std::unordered_map<uint32_t, CryptoEntry> crypto_;
  struct Retired {
    uint64_t token;
    std::shared_ptr<const srtp::CryptoConfig> cfg;
  };
  std::deque<Retired> retired_;
  uint64_t next_key_id_ = 1;
  void retire(std::shared_ptr<const srtp::CryptoConfig> c);
  grpc::Status parse_crypto(const pb::FlowSpec& s, const std::string& f, FlowKind kind,
                            const FlowSlot* existing,
                            std::shared_ptr<const srtp::CryptoConfig>* out);
};

}  // namespace sluice
