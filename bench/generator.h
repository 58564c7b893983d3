// The in-process traffic generator of sluice-bench: one DPDK lcore, one
// memif server port, RTP-over-UDP frames stamped with the TSC.
//
// The generator both sends and receives on the same lcore, so what it
// measures through the dataplane is bounded by what it can do against an
// ideal reflector too; that is why sluice-bench measures the same generator
// against testpmd (io forwarding) in the same run and reports the ratio.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/core/srtp.h"

struct rte_mbuf;
struct rte_mempool;

namespace sluice::bench {

// Layout of a generated frame (untagged Ethernet, IPv4 without options).
inline constexpr uint32_t kOffIp = 14;
inline constexpr uint32_t kOffUdp = kOffIp + 20;
inline constexpr uint32_t kOffRtp = kOffUdp + 8;
inline constexpr uint32_t kOffPayload = kOffRtp + 12;
inline constexpr uint32_t kOffTsc = kOffPayload;        // 8 bytes, host order
inline constexpr uint32_t kOffMagic = kOffPayload + 8;  // 4 bytes
inline constexpr uint32_t kOffFlow = kOffPayload + 12;  // 4 bytes, flow index
inline constexpr uint32_t kMagic = 0x5b1ce5be;
inline constexpr uint32_t kMinPayload = 16;  // tsc + magic + flow index

struct GenFlow {
  uint32_t dst_ip;    // host order
  uint16_t dst_port;  // host order
  uint16_t ip_csum;   // IPv4 header checksum (depends on dst_ip only)
  uint32_t udp_base;  // folded UDP checksum sum without seq, timestamp, tsc
  uint16_t seq = 0;
  uint16_t src_port;
};

struct GenParams {
  // SRTP runs (bench --crypto): keys set means the frames we send are SRTP
  // protected with them (decrypt and rekey modes); reply_delta is how much
  // longer a reply is than what we sent (+tag: encrypt, -tag: decrypt).
  // Replies may be encrypted, so these runs also carry the TSC's low 32 bits
  // in the RTP timestamp and are recognised by SSRC.
  std::shared_ptr<const srtp::KeySet> keys;
  bool crypto = false;
  int reply_delta = 0;
  // Relay passes a reply makes (the TTL it loses): 2 through NAT loopback.
  uint8_t relay_hops = 1;
  std::array<uint8_t, 6> src_mac{};
  std::array<uint8_t, 6> dst_mac{};
  uint32_t src_ip = 0;
  uint32_t payload_bytes = 160;
  uint8_t payload_type = 0;
  uint32_t samples_per_packet = 160;  // RTP timestamp step
  // Flow i goes to dst_ips[i] : dst_ports[i] from src_ip : src_ports[i].
  std::vector<uint32_t> dst_ips;
  std::vector<uint16_t> dst_ports;
  std::vector<uint16_t> src_ports;
};

struct BlastResult {
  uint64_t tx = 0;         // accepted by the TX queue over the whole run
  uint64_t rx = 0;         // marked frames received over the whole run
  uint64_t rx_window = 0;  // received inside the measurement window
  uint64_t tx_window = 0;
  double window_s = 0;
  uint64_t unmarked = 0;   // frames received without our marker
  double rx_mpps() const { return window_s > 0 ? double(rx_window) / window_s / 1e6 : 0; }
  double tx_mpps() const { return window_s > 0 ? double(tx_window) / window_s / 1e6 : 0; }
  double loss() const { return tx ? double(tx - std::min(tx, rx)) / double(tx) : 0; }
};

struct WarmupResult {
  uint64_t rx = 0;        // marked replies
  uint64_t bad_csum = 0;  // IPv4 header or UDP checksum wrong
  uint64_t bad_addr = 0;  // MACs, addresses, ports or TTL not as expected
};

struct LatencyResult {
  uint64_t tx = 0, rx = 0;
  uint64_t tx_refused = 0;  // the TX ring was full (the DUT fell behind)
  uint64_t skipped = 0;     // not sent: the generator itself was stalled
  double achieved_pps = 0;
  size_t samples = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  double loss() const { return tx ? double(tx - std::min(tx, rx)) / double(tx) : 0; }
};

class Generator {
 public:
  // rte_eal_init (once per process) with a memif server vdev listening on
  // memif_socket, then configures (does not start) the port.
  bool init(const std::string& file_prefix, const std::string& memif_socket,
            const std::string& mac, std::string* err);
  // Starts the port: from now on a memif client may connect.
  bool start(std::string* err);
  bool link_up() const;
  // Drops whatever is queued towards us.
  void flush_rx();
  void cleanup();
  // The EAL runtime directory of this process ("" before init).
  const std::string& runtime_dir() const { return runtime_dir_; }

  // Builds per-flow state; call again to change the destination MAC.
  void setup(const GenParams& p);
  uint32_t frame_bytes() const { return frame_len_; }

  // Sends probes until one comes back (the peer forwards), up to timeout.
  bool wait_forwarding(double timeout_s, const volatile int* stop);
  // One packet per flow, draining replies, each of which is checked: IPv4
  // and UDP checksums, and the addresses: with hairpin (the dataplane) the
  // reply must come from the flow's relay endpoint to the generator's
  // endpoint of that flow, with our MAC as destination and TTL 63; without
  // (testpmd io), the frame must come back unchanged.
  WarmupResult warmup(bool hairpin, const volatile int* stop);
  // As fast as possible for warm_s + seconds; counts in the last `seconds`.
  BlastResult blast(double warm_s, double seconds, const volatile int* stop);
  // Paced at rate_pps for warm_s + seconds, recording the round-trip time
  // of every frame sent after warm_s.
  LatencyResult paced(double rate_pps, double warm_s, double seconds, const volatile int* stop);

 private:
  void fill(rte_mbuf** m, unsigned n, uint64_t tsc);
  bool marked(const rte_mbuf* m, uint64_t* tsc) const;
  unsigned drain_rx(uint64_t* rx, uint64_t* unmarked);
  void check(const rte_mbuf* m, bool hairpin, WarmupResult* r) const;

  std::string runtime_dir_;
  uint16_t port_ = 0;
  bool eal_ = false, started_ = false;
  rte_mempool* pool_ = nullptr;
  uint64_t hz_ = 0;

  std::vector<uint8_t> tmpl_;
  uint32_t frame_len_ = 0;
  uint32_t samples_ = 160;
  uint32_t src_ip_ = 0;
  std::array<uint8_t, 6> src_mac_{}, dst_mac_{};
  std::vector<GenFlow> flows_;
  size_t cursor_ = 0;
  // SRTP (see GenParams).
  bool crypto_ = false;
  int reply_delta_ = 0;
  uint8_t relay_hops_ = 1;
  uint32_t tag_ = 0;
  srtp::CryptoConfig tx_cfg_;
  std::unique_ptr<srtp::CryptoState[]> states_;
  std::unique_ptr<srtp::Engine> engine_;
};

}  // namespace sluice::bench
