#include "dataplane/runtime.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sluice_version.h"

namespace sluice {

namespace {

// Default inactivity timeout when the spec leaves it unset.
constexpr uint32_t kDefaultTimeoutMs = 60000;
constexpr uint64_t kArpRetryMs = 300;
constexpr uint64_t kArpReachableMs = 30000;  // re-confirm after this
constexpr uint64_t kArpStaleMs = 90000;       // invalid after this unconfirmed

std::string ring_name(const char* what, int id) { return absl::StrCat("sl_", what, id); }

int set_kernel_address(const std::string& ifname, uint32_t ip, uint8_t prefix) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = htonl(ip);
  int rc = ioctl(fd, SIOCSIFADDR, &ifr);
  if (rc == 0) {
    sin->sin_addr.s_addr = htonl(net::prefix_mask(prefix));
    rc = ioctl(fd, SIOCSIFNETMASK, &ifr);
  }
  if (rc == 0) rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags |= IFF_UP;
    rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  close(fd);
  return rc;
}

pb::Endpoint endpoint(uint32_t ip, uint16_t port) {
  pb::Endpoint e;
  e.set_address(net::format_ipv4(ip));
  e.set_port(port);
  return e;
}

void now_timestamp(google::protobuf::Timestamp* t) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  t->set_seconds(ns / 1000000000);
  t->set_nanos(int32_t(ns % 1000000000));
}

}  // namespace

Runtime::~Runtime() {
  stop();
  rte_eal_mp_wait_lcore();
  for (auto& p : ports_) {
    rte_eth_dev_stop(p->port_id);
    rte_eth_dev_close(p->port_id);
    if (p->tap_id >= 0) {
      rte_eth_dev_stop(uint16_t(p->tap_id));
      rte_eth_dev_close(uint16_t(p->tap_id));
    }
  }
  flows_.reset();
  retired_.clear();
  crypto_.clear();
  crypto_table_.reset();
  for (auto& w : workers_) {
    rte_ring_free(w->inbox);
    rte_ring_free(w->inject);
    rte_ring_free(w->punt);
    rte_ring_free(w->events);
  }
  rte_free(qsbr_);
  rte_mempool_free(pool_);
}

int Runtime::port_index(const std::string& name) const {
  for (size_t i = 0; i < ports_.size(); ++i)
    if (ports_[i]->name == name) return int(i);
  return -1;
}

std::unique_ptr<Runtime> Runtime::create(const pb::DataplaneConfig& cfg, std::string* err) {
  std::unique_ptr<Runtime> rt(new Runtime());
  rt->cfg_ = cfg;
  rt->hz_ = rte_get_tsc_hz();
  rt->start_tsc_ = rte_rdtsc();
  rt->view_.tsc_hz = rt->hz_;
  rt->view_.media_min = uint16_t(cfg.media().port_min());
  rt->view_.media_max = uint16_t(cfg.media().port_max());

  unsigned nworkers = rte_lcore_count() - 1;
  if (nworkers == 0 || nworkers > kMaxWorkers) {
    *err = absl::StrCat("need 1..", kMaxWorkers, " worker lcores besides the control lcore, have ",
                        nworkers);
    return nullptr;
  }
  rt->pool_ = rte_pktmbuf_pool_create("sl_mbufs", cfg.mbufs(), 256, 0,
                                      RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
  if (!rt->pool_) {
    *err = absl::StrCat("mbuf pool of ", cfg.mbufs(), " mbufs: ", rte_strerror(rte_errno),
                        " (raise -m or lower mbufs)");
    return nullptr;
  }
  size_t qsz = rte_rcu_qsbr_get_memsize(nworkers);
  rt->qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("sl_qsbr", qsz, RTE_CACHE_LINE_SIZE));
  if (!rt->qsbr_ || rte_rcu_qsbr_init(rt->qsbr_, nworkers) != 0) {
    *err = "cannot allocate the QSBR variable";
    return nullptr;
  }
  try {
    rt->flows_ = std::make_unique<FlowTable>(cfg.media().max_flows(), rt->qsbr_);
    rt->crypto_table_ = std::make_unique<srtp::CryptoTable>(cfg.media().max_flows());
  } catch (const std::bad_alloc&) {
    *err = absl::StrCat("cannot allocate a flow table of ", cfg.media().max_flows(), " flows");
    return nullptr;
  }
  rt->neighbors_ = std::make_unique<NeighborTable>();
  rt->view_.flows = rt->flows_.get();
  rt->view_.crypto = rt->crypto_table_.get();
  rt->view_.neighbors = rt->neighbors_.get();

  unsigned lcore;
  int wid = 0;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    auto w = std::make_unique<Worker>();
    w->id = uint8_t(wid);
    w->lcore = lcore;
    w->rt = rt.get();
    unsigned sock = rte_lcore_to_socket_id(lcore);
    w->inbox = rte_ring_create(ring_name("in", wid).c_str(), 4096, int(sock), RING_F_SC_DEQ);
    w->inject = rte_ring_create(ring_name("inj", wid).c_str(), 1024, int(sock),
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
    w->punt = rte_ring_create(ring_name("pu", wid).c_str(), 1024, int(sock),
                              RING_F_SP_ENQ | RING_F_SC_DEQ);
    w->events = rte_ring_create_elem(ring_name("ev", wid).c_str(), sizeof(WorkerEvent), 4096,
                                     int(sock), RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!w->inbox || !w->inject || !w->punt || !w->events) {
      *err = absl::StrCat("cannot create rings for worker ", wid, ": ", rte_strerror(rte_errno));
      return nullptr;
    }
    rte_rcu_qsbr_thread_register(rt->qsbr_, unsigned(wid));
    rt->workers_.push_back(std::move(w));
    ++wid;
  }
  if (!rt->setup_ports(err)) return nullptr;
  return rt;
}

bool Runtime::setup_ports(std::string* err) {
  uint16_t nworkers = uint16_t(workers_.size());
  size_t next_worker = 0;
  for (int i = 0; i < cfg_.ports_size(); ++i) {
    const auto& pc = cfg_.ports(i);
    auto p = std::make_unique<PortRuntime>();
    p->name = pc.name();
    p->role = pc.role();
    p->device = pc.device();
    std::string devname = pc.device();
    if (devname.rfind("pci:", 0) == 0) {
      devname = devname.substr(4);
    } else {
      devname = devname.substr(0, devname.find(','));
    }
    uint16_t pid;
    if (rte_eth_dev_get_port_by_name(devname.c_str(), &pid) != 0) {
      *err = absl::StrCat("ports[", i, "].device: no DPDK port named '", devname,
                          "' (the device did not probe; check the vdev arguments, the "
                          "interface name and permissions)");
      return false;
    }
    p->port_id = pid;
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(pid, &info) != 0) {
      *err = absl::StrCat("ports[", i, "]: cannot read device info");
      return false;
    }
    uint16_t nrx = uint16_t(pc.rx_queues());
    if (nrx > info.max_rx_queues || nworkers > info.max_tx_queues) {
      *err = absl::StrCat("ports[", i, "].device: ", devname, " supports ", info.max_rx_queues,
                          " rx / ", info.max_tx_queues, " tx queues; need ", nrx, " rx and ",
                          nworkers, " tx (one per worker; for af_packet add qpairs=N)");
      return false;
    }
    rte_eth_conf conf{};
    if (nrx > 1) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_hf = RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP;
      conf.rx_adv_conf.rss_conf.rss_hf &= info.flow_type_rss_offloads;
    }
    int rc = rte_eth_dev_configure(pid, nrx, nworkers, &conf);
    if (rc != 0) {
      *err = absl::StrCat("ports[", i, "]: configure failed: ", rte_strerror(-rc));
      return false;
    }
    uint16_t nrxd = uint16_t(cfg_.rx_ring_size()), ntxd = uint16_t(cfg_.tx_ring_size());
    rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nrxd, &ntxd);
    int sock = rte_eth_dev_socket_id(pid);
    if (sock < 0) sock = int(rte_socket_id());
    for (uint16_t q = 0; q < nrx; ++q) {
      rc = rte_eth_rx_queue_setup(pid, q, nrxd, unsigned(sock), nullptr, pool_);
      if (rc != 0) {
        *err = absl::StrCat("ports[", i, "]: rx queue ", q, ": ", rte_strerror(-rc));
        return false;
      }
      Worker& w = *workers_[next_worker++ % nworkers];
      w.rxq.push_back({pid, q, uint8_t(i)});
    }
    for (uint16_t q = 0; q < nworkers; ++q) {
      rc = rte_eth_tx_queue_setup(pid, q, ntxd, unsigned(sock), nullptr);
      if (rc != 0) {
        *err = absl::StrCat("ports[", i, "]: tx queue ", q, ": ", rte_strerror(-rc));
        return false;
      }
    }
    rc = rte_eth_dev_start(pid);
    if (rc != 0) {
      *err = absl::StrCat("ports[", i, "]: start failed: ", rte_strerror(-rc));
      return false;
    }
    rte_eth_promiscuous_enable(pid);  // we filter on our MAC ourselves

    PortInfo& pi = view_.ports[i];
    rte_ether_addr mac;
    rte_eth_macaddr_get(pid, &mac);
    std::memcpy(pi.mac.data(), mac.addr_bytes, 6);
    pi.ip = *net::parse_ipv4(pc.address());
    pi.prefix = uint8_t(pc.prefix_length());
    pi.gateway = pc.gateway().empty() ? 0 : *net::parse_ipv4(pc.gateway());
    pi.vlan = uint16_t(pc.vlan());
    p->addresses.push_back(pi.ip);
    for (const auto& a : pc.extra_addresses()) p->addresses.push_back(*net::parse_ipv4(a));
    for (uint32_t a : p->addresses) {
      int idx = flows_->add_address(a);
      if (idx >= 0) view_.address_port[idx] = int8_t(i);
    }
    ports_.push_back(std::move(p));
    view_.nports = i + 1;
    if (!pc.exception_tap().empty()) {
      if (!setup_tap(*ports_.back(), i, err)) return false;
      pi.exception = true;
    }
  }
  for (const auto& r : cfg_.routes()) {
    auto pfx = *net::parse_prefix(r.prefix());
    RouteEntry& e = view_.routes[view_.nroutes++];
    e.prefix = pfx.first;
    e.mask = net::prefix_mask(pfx.second);
    e.next_hop = *net::parse_ipv4(r.next_hop());
    e.port = uint8_t(port_index(r.port()));
  }
  uint64_t now = rte_rdtsc();
  for (const auto& n : cfg_.static_neighbors()) {
    neighbors_->set(*net::parse_ipv4(n.address()), *net::parse_mac(n.mac()),
                    uint8_t(port_index(n.port())), NeighborTable::kStatic, now);
  }
  return true;
}

bool Runtime::setup_tap(PortRuntime& p, int idx, std::string* err) {
  // The TAP carries the port's MAC and address, so the kernel accepts the
  // frames we punt unchanged and its replies leave with the right source.
  std::string vdev = absl::StrCat("net_tap_sl", idx);
  std::string args = absl::StrCat("iface=", cfg_.ports(idx).exception_tap(),
                                   ",mac=", net::format_mac(view_.ports[idx].mac));
  int rc = rte_eal_hotplug_add("vdev", vdev.c_str(), args.c_str());
  uint16_t tid;
  if (rc != 0 || rte_eth_dev_get_port_by_name(vdev.c_str(), &tid) != 0) {
    *err = absl::StrCat("ports[", idx, "].exception_tap: cannot create TAP '",
                        cfg_.ports(idx).exception_tap(), "' (needs CAP_NET_ADMIN and /dev/net/tun)");
    return false;
  }
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(tid, 1, 1, &conf) != 0 ||
      rte_eth_rx_queue_setup(tid, 0, 512, rte_socket_id(), nullptr, pool_) != 0 ||
      rte_eth_tx_queue_setup(tid, 0, 512, rte_socket_id(), nullptr) != 0 ||
      rte_eth_dev_start(tid) != 0) {
    *err = absl::StrCat("ports[", idx, "].exception_tap: cannot start the TAP port");
    return false;
  }
  p.tap_id = tid;
  p.tap_name = cfg_.ports(idx).exception_tap();
  const PortInfo& pi = view_.ports[idx];
  if (set_kernel_address(p.tap_name, pi.ip, pi.prefix) != 0) {
    *err = absl::StrCat("ports[", idx, "].exception_tap: cannot set address on ", p.tap_name, ": ",
                        std::strerror(errno));
    return false;
  }
  return true;
}

void Runtime::start_workers() {
  for (auto& w : workers_) {
    Worker* wp = w.get();
    rte_eal_remote_launch(
        [](void* arg) -> int {
          auto* w = static_cast<Worker*>(arg);
          return w->rt->worker_main(*w);
        },
        wp, w->lcore);
  }
}

void Runtime::post(std::function<void()> fn) {
  std::lock_guard<std::mutex> g(cmd_mu_);
  cmds_.push_back(std::move(fn));
}

bool Runtime::run_commands() {
  std::vector<std::function<void()>> todo;
  {
    std::lock_guard<std::mutex> g(cmd_mu_);
    todo.swap(cmds_);
  }
  for (auto& f : todo) f();
  return !todo.empty();
}

void Runtime::control_loop() {
  rte_mbuf* pkts[kBurst];
  uint64_t sleep_us = 50;
  while (!stopping()) {
    bool work = run_commands();
    for (auto& w : workers_) {
      unsigned n = rte_ring_sc_dequeue_burst(w->punt, reinterpret_cast<void**>(pkts), kBurst, nullptr);
      for (unsigned i = 0; i < n; ++i) handle_punted(pkts[i]);
      WorkerEvent evs[kBurst];
      unsigned ne = rte_ring_sc_dequeue_burst_elem(w->events, evs, sizeof(WorkerEvent), kBurst, nullptr);
      for (unsigned i = 0; i < ne; ++i) handle_event(evs[i]);
      work |= n || ne;
    }
    for (size_t i = 0; i < ports_.size(); ++i) {
      PortRuntime& p = *ports_[i];
      if (p.tap_id < 0) continue;
      uint16_t n = rte_eth_rx_burst(uint16_t(p.tap_id), 0, pkts, kBurst);
      for (uint16_t k = 0; k < n; ++k) inject(uint8_t(i), pkts[k]);
      p.injected.fetch_add(n, std::memory_order_relaxed);
      work |= n > 0;
    }
    uint64_t now = rte_rdtsc();
    if (now >= next_periodic_) {
      periodic(now);
      next_periodic_ = now + hz_ / 100;  // 10 ms
    }
    if (work) {
      sleep_us = 20;
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      sleep_us = std::min<uint64_t>(sleep_us * 2, 1000);
    }
  }
  run_commands();
}

void Runtime::inject(uint8_t port_idx, rte_mbuf* m) {
  // The control lcore has no TX queue on the ports (memif and af_packet
  // offer few); the first worker sends for it.
  m->port = port_idx;
  if (rte_ring_sp_enqueue(workers_[0]->inject, m) != 0) rte_pktmbuf_free(m);
}

void Runtime::handle_punted(rte_mbuf* m) {
  uint8_t idx = uint8_t(m->port);  // the worker stores the port index here
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t l2 = 14;
  uint16_t et = net::load16(f + 12);
  if (et == net::kEtherTypeVlan && m->data_len >= 18) {
    et = net::load16(f + 16);
    l2 = 18;
  }
  if (et == net::kEtherTypeArp && m->data_len >= l2 + 28) {
    handle_arp(m, idx);
    return;
  }
  PortRuntime& p = *ports_[idx];
  if (p.tap_id < 0) {
    rte_pktmbuf_free(m);
    return;
  }
  if (l2 == 18) {
    // The kernel TAP is untagged: strip our VLAN tag.
    std::memmove(rte_pktmbuf_mtod(m, uint8_t*) + 4, f, 12);
    rte_pktmbuf_adj(m, 4);
  }
  if (rte_eth_tx_burst(uint16_t(p.tap_id), 0, &m, 1) == 1) {
    p.punted.fetch_add(1, std::memory_order_relaxed);
  } else {
    rte_pktmbuf_free(m);
  }
}

void Runtime::handle_arp(rte_mbuf* m, uint8_t idx) {
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t l2 = net::load16(f + 12) == net::kEtherTypeVlan ? 18 : 14;
  const uint8_t* a = f + l2;
  PortRuntime& p = *ports_[idx];
  if (net::load16(a) == 1 && net::load16(a + 2) == net::kEtherTypeIpv4 && a[4] == 6 && a[5] == 4) {
    uint16_t op = net::load16(a + 6);
    net::Mac sha;
    std::memcpy(sha.data(), a + 8, 6);
    uint32_t spa = net::load32(a + 14);
    uint32_t tpa = net::load32(a + 24);
    bool for_us = std::find(p.addresses.begin(), p.addresses.end(), tpa) != p.addresses.end();
    uint64_t now = rte_rdtsc();
    auto known = neighbors_->get(spa);
    // RFC 826: update a known sender; learn it when the packet is for us.
    if (spa != 0 && (for_us || (known && known->state != NeighborTable::kInvalid)) &&
        !(known && known->state == NeighborTable::kStatic)) {
      neighbors_->set(spa, sha, idx, NeighborTable::kReachable, now);
      resolving_.erase(std::remove_if(resolving_.begin(), resolving_.end(),
                                      [&](const Pending& r) { return r.ip == spa; }),
                       resolving_.end());
    }
    if (op == 1 && for_us) send_arp(idx, 2, sha, spa, sha);
  }
  // The kernel behind the TAP keeps its own neighbour cache: let it see ARP.
  if (p.tap_id >= 0) {
    if (l2 == 18) {
      std::memmove(rte_pktmbuf_mtod(m, uint8_t*) + 4, f, 12);
      rte_pktmbuf_adj(m, 4);
    }
    if (rte_eth_tx_burst(uint16_t(p.tap_id), 0, &m, 1) == 1) {
      p.punted.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  rte_pktmbuf_free(m);
}

void Runtime::send_arp(uint8_t idx, uint16_t op, const net::Mac& tha, uint32_t tip,
                       const net::Mac& dst_mac) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (!m) return;
  const PortInfo& pi = view_.ports[idx];
  uint32_t l2 = pi.vlan ? 18 : 14;
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(std::max<uint32_t>(l2 + 28, 60))));
  std::memset(f, 0, std::max<uint32_t>(l2 + 28, 60));
  std::memcpy(f, dst_mac.data(), 6);
  std::memcpy(f + 6, pi.mac.data(), 6);
  if (pi.vlan) {
    net::store16(f + 12, net::kEtherTypeVlan);
    net::store16(f + 14, pi.vlan);
  }
  net::store16(f + l2 - 2, net::kEtherTypeArp);
  uint8_t* a = f + l2;
  net::store16(a, 1);
  net::store16(a + 2, net::kEtherTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  net::store16(a + 6, op);
  std::memcpy(a + 8, pi.mac.data(), 6);
  net::store32(a + 14, pi.ip);
  std::memcpy(a + 18, tha.data(), 6);
  net::store32(a + 24, tip);
  inject(idx, m);
}

void Runtime::resolve(uint32_t ip, uint8_t idx, uint64_t now) {
  for (auto& r : resolving_)
    if (r.ip == ip) return;  // already in progress; periodic() retries
  if (resolving_.size() > 1024) return;
  neighbors_->mark_incomplete(ip, idx, now);
  resolving_.push_back({ip, idx, 1, now});
  send_arp(idx, 1, net::Mac{}, ip, net::Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
}

void Runtime::handle_event(const WorkerEvent& e) {
  uint64_t now = rte_rdtsc();
  if (e.kind == EventKind::kResolve) {
    resolve(e.ip, e.port, now);
    return;
  }
  FlowSlot& s = flows_->slot(e.slot);
  if (!s.meta.in_use) return;
  // A reply to the peer needs its next hop resolved ahead of the first
  // packet; the egress port of the reverse flow is not known here, so
  // resolve on every port whose subnet holds the peer.
  for (int i = 0; i < view_.nports; ++i) {
    uint8_t port;
    uint32_t nh = next_hop(view_, uint8_t(i), e.ip, &port);
    net::Mac mac;
    if (nh == e.ip && port == i && !neighbors_->lookup(nh, &mac)) resolve(nh, port, now);
  }
  pb::Event ev;
  ev.set_type(e.kind == EventKind::kLatched ? pb::EVENT_TYPE_LATCHED : pb::EVENT_TYPE_PEER_CHANGED);
  ev.mutable_key()->set_local_address(net::format_ipv4(s.meta.local_ip));
  ev.mutable_key()->set_local_port(s.meta.local_port);
  *ev.mutable_peer() = endpoint(e.ip, e.peer_port);
  ev.set_cookie(s.meta.cookie);
  emit(std::move(ev));
}

void Runtime::emit(pb::Event ev) {
  now_timestamp(ev.mutable_time());
  if (on_event) on_event(ev);
}

void Runtime::retire(std::shared_ptr<const srtp::CryptoConfig> c) {
  if (c) retired_.push_back({rte_rcu_qsbr_start(qsbr_), std::move(c)});
}

void Runtime::periodic(uint64_t now) {
  flows_->reclaim(false);
  // Replaced SRTP configs (and the keys only they held) go once no worker
  // can still be using them.
  while (!retired_.empty() && rte_rcu_qsbr_check(qsbr_, retired_.front().token, false))
    retired_.pop_front();
  uint64_t ms = hz_ / 1000;
  // ARP retries and aging.
  for (size_t i = 0; i < resolving_.size();) {
    Pending& r = resolving_[i];
    if (now - r.last >= kArpRetryMs * ms) {
      if (r.tries >= 3) {
        neighbors_->set_state(r.ip, NeighborTable::kInvalid);
        resolving_.erase(resolving_.begin() + long(i));
        continue;
      }
      ++r.tries;
      r.last = now;
      send_arp(r.port, 1, net::Mac{}, r.ip, net::Mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    }
    ++i;
  }
  struct Refresh {
    uint32_t ip;
    uint8_t port;
    net::Mac mac;
    bool expire;
  };
  std::vector<Refresh> todo;
  neighbors_->visit([&](uint32_t ip, const NeighborTable::Entry& e, uint64_t updated) {
    if (e.state == NeighborTable::kStatic || e.state == NeighborTable::kIncomplete) return;
    uint64_t age = now - updated;
    if (age > kArpStaleMs * ms) {
      todo.push_back({ip, e.port, e.mac, true});
    } else if (age > kArpReachableMs * ms && e.state == NeighborTable::kReachable) {
      todo.push_back({ip, e.port, e.mac, false});
    }
  });
  for (auto& t : todo) {
    if (t.expire) {
      neighbors_->set_state(t.ip, NeighborTable::kInvalid);
    } else {
      // Unicast re-confirmation; the entry stays usable meanwhile.
      neighbors_->set_state(t.ip, NeighborTable::kStale);
      send_arp(t.port, 1, net::Mac{}, t.ip, t.mac);
    }
  }
  scan_flows(now);
}

void Runtime::scan_flows(uint64_t now) {
  // Walks the slot array a chunk per tick (10 ms) so that a full pass over
  // 1M flows takes about a second of control-lcore time slices.
  const uint32_t chunk = 16384;
  uint32_t cap = flows_->capacity();
  if (scan_pos_ == 0) {
    // A DROPS event per flow at most once per pass, and a pass at most once
    // per second.
    if (now - scan_cycle_start_ < hz_) return;
    scan_cycle_start_ = now;
    pb::Event ev;
    bool any = false;
    for (int d = 0; d < kDropCount; ++d) {
      uint64_t sum = 0;
      for (auto& w : workers_) sum += w->c.drops[d].load(std::memory_order_relaxed);
      if (sum != global_drops_reported_[d] && flow_drop_index(Drop(d)) < 0) {
        auto* dc = ev.add_drops();
        dc->set_reason(kDropNames[d]);
        dc->set_packets(sum - global_drops_reported_[d]);
        any = true;
      }
      global_drops_reported_[d] = sum;
    }
    if (any) {
      ev.set_type(pb::EVENT_TYPE_DROPS);
      emit(std::move(ev));
    }
  }
  uint32_t end = std::min(cap, scan_pos_ + chunk);
  for (uint32_t i = scan_pos_; i < end; ++i) {
    FlowSlot& s = flows_->slot(i);
    if (!s.meta.in_use) continue;
    uint64_t seen = s.st.last_seen_tsc.load(std::memory_order_relaxed);
    bool latched = s.st.latched.load(std::memory_order_relaxed) & kLatchedValid;
    uint64_t timeout = uint64_t(s.meta.timeout_ms) * (hz_ / 1000);
    auto make = [&](pb::EventType t) {
      pb::Event ev;
      ev.set_type(t);
      ev.mutable_key()->set_local_address(net::format_ipv4(s.meta.local_ip));
      ev.mutable_key()->set_local_port(s.meta.local_port);
      uint64_t l = s.st.latched.load(std::memory_order_relaxed);
      if (l & kLatchedValid) *ev.mutable_peer() = endpoint(uint32_t(l >> 16), uint16_t(l));
      ev.set_cookie(s.meta.cookie);
      return ev;
    };
    if (latched && seen && now > seen && now - seen > timeout) {
      if (!s.meta.timed_out) {
        s.meta.timed_out = 1;
        emit(make(pb::EVENT_TYPE_TIMED_OUT));
      }
    } else if (s.meta.timed_out) {
      s.meta.timed_out = 0;
      emit(make(pb::EVENT_TYPE_RESUMED));
    }
    if (s.config().crypto) {
      auto it = crypto_.find(i);
      if (it != crypto_.end()) {
        const srtp::CryptoState& cs = *crypto_table_->get(i);
        uint32_t bad = cs.auth_failed.load(std::memory_order_relaxed) +
                       cs.replayed.load(std::memory_order_relaxed);
        if (bad != it->second.auth_reported) {
          it->second.auth_reported = bad;
          pb::Event ev = make(pb::EVENT_TYPE_SRTP_AUTH_FAILED);
          auto* a = ev.add_drops();
          a->set_reason(kDropNames[int(Drop::kSrtpAuth)]);
          a->set_packets(cs.auth_failed.load(std::memory_order_relaxed));
          auto* r = ev.add_drops();
          r->set_reason(kDropNames[int(Drop::kSrtpReplay)]);
          r->set_packets(cs.replayed.load(std::memory_order_relaxed));
          emit(std::move(ev));
        }
      }
    }
    uint16_t dsum = 0;
    for (auto& d : s.st.drops) dsum = uint16_t(dsum + d.load(std::memory_order_relaxed));
    if (dsum != s.meta.drops_reported) {
      pb::Event ev = make(pb::EVENT_TYPE_DROPS);
      for (int d = 0; d < kDropCount; ++d) {
        int fi = flow_drop_index(Drop(d));
        if (fi < 0) continue;
        uint32_t v = s.st.drops[fi].load(std::memory_order_relaxed);
        if (v) {
          auto* dc = ev.add_drops();
          dc->set_reason(kDropNames[d]);
          dc->set_packets(v);
        }
      }
      s.meta.drops_reported = dsum;
      emit(std::move(ev));
    }
  }
  scan_pos_ = end >= cap ? 0 : end;
}

}  // namespace sluice
