// A flow: one direction of one media stream through the relay, keyed by the
// relay-owned local address and port it receives on.
//
// Memory layout follows who writes what:
//  - FlowConfig is written only by the control lcore and read by workers. It
//    is double-buffered inside the slot: the writer fills the inactive copy
//    and flips `active` with a release store; it reuses a copy only after a
//    QSBR grace period, so a worker never sees a half-written config.
//  - FlowState is written only by the flow's owning worker (single writer);
//    the control lcore reads it for listings and timeouts with relaxed loads.
//  - FlowMeta is touched by the control lcore alone, but for `active`.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/core/drops.h"

namespace sluice {

enum class Latch : uint8_t { kFirst, kAllowN, kStrict };
enum class TtlMode : uint8_t { kDecrement, kReset };
enum class FlowKind : uint8_t { kRtp, kRtcp, kMux };

inline constexpr int kMaxSenders = 10;

struct FlowConfig {
  uint32_t src_ip = 0;       // egress source (relay address)
  uint32_t dst_ip = 0;       // configured destination
  uint32_t expect_ip = 0;    // expected peer (strict latching)
  uint32_t police_rate = 0;  // packets per second, 0 = off
  uint32_t police_burst = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint16_t expect_port = 0;  // 0: any port
  uint8_t egress_port = 0;
  Latch latch = Latch::kFirst;
  uint8_t max_senders = 1;
  uint8_t dscp = 46;
  TtlMode ttl_mode = TtlMode::kDecrement;
  uint8_t ttl_value = 64;
  FlowKind kind = FlowKind::kRtp;
  uint8_t worker = 0;  // owning worker index
  // SRTP: bit 0 the flow has state in the CryptoTable at its slot's index;
  // bit 1 it decrypts (it latches only on authenticated packets).
  uint8_t crypto = 0;

  bool operator==(const FlowConfig& o) const;
};

struct FlowState {
  std::atomic<uint64_t> packets{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> last_seen_tsc{0};
  // Latched peer packed as ip << 16 | port, with bit 48 set when valid. One
  // 64-bit word so that the reverse flow's worker reads a consistent pair.
  std::atomic<uint64_t> latched{0};
  uint64_t police_tat = 0;  // GCRA theoretical arrival time, in TSC
  std::atomic<uint32_t> drops[kFlowDropCount] = {};
  std::atomic<uint32_t> last_ssrc{0};
  std::atomic<uint32_t> seq_gaps{0};
  std::atomic<uint32_t> sender_ip[kMaxSenders] = {};
  std::atomic<uint16_t> sender_port[kMaxSenders] = {};
  std::atomic<uint16_t> last_seq{0};
  std::atomic<uint8_t> nsenders{0};
  std::atomic<uint8_t> last_pt{0};
  bool seq_valid = false;

  void reset();
};

inline constexpr uint64_t kLatchedValid = uint64_t(1) << 48;
inline uint64_t pack_peer(uint32_t ip, uint16_t port) {
  return kLatchedValid | uint64_t(ip) << 16 | port;
}

struct FlowMeta {
  uint64_t cookie = 0;
  uint64_t generation = 0;
  uint64_t grace_token = 0;  // QSBR token guarding the inactive config copy
  uint32_t local_ip = 0;
  uint32_t timeout_ms = 60000;
  uint16_t local_port = 0;
  uint16_t drops_reported = 0;  // low bits of the drop sum last reported
  uint8_t in_use = 0;
  uint8_t timed_out = 0;
  // Which cfg copy is live: written by the control lcore, read by workers.
  // It lives in this struct's tail padding, which keeps a slot at 248 B.
  std::atomic<uint8_t> active{0};

  void reset() {
    cookie = generation = grace_token = 0;
    local_ip = 0;
    timeout_ms = 60000;
    local_port = drops_reported = 0;
    in_use = timed_out = 0;
    active.store(0, std::memory_order_relaxed);
  }
};

struct FlowSlot {
  FlowConfig cfg[2];
  FlowMeta meta;
  FlowState st;

  // Acquire pairs with the writer's release store of `active`: the config
  // copy it selects was fully written before the flip.
  const FlowConfig& config() const {
    return cfg[meta.active.load(std::memory_order_acquire)];
  }
};

}  // namespace sluice
