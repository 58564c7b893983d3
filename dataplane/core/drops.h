// Drop reasons, declared once. Every dropped packet bumps exactly one of
// these, per worker; the flow-level ones are also counted on the flow.
#pragma once

#include <cstdint>

namespace sluice {

// X(enum name, wire name, counted per flow)
#define SLUICE_DROP_REASONS(X)                                                  \
  X(kMalformed, "malformed", false)     /* truncated or inconsistent headers */ \
  X(kBadIpChecksum, "bad_ip_checksum", false)                                  \
  X(kNotForUs, "not_for_us", false)     /* another MAC or address */           \
  X(kFragment, "fragment", false)       /* IP fragment into the media range */ \
  X(kNoFlow, "no_flow", false)          /* media port with no flow */          \
  X(kNoExceptionPath, "no_exception_path", false)                              \
  X(kLatchRejected, "latch_rejected", true)                                    \
  X(kPoliced, "policed", true)                                                 \
  X(kTtlExpired, "ttl_expired", true)                                          \
  X(kNoNeighbor, "no_neighbor", true)   /* next hop not resolved (yet) */      \
  X(kNoRoute, "no_route", true)                                                \
  X(kHairpinLoop, "hairpin_loop", false) /* relayed to ourselves twice */      \
  X(kSrtpAuth, "srtp_auth_failed", false) /* per flow in its crypto state */  \
  X(kSrtpReplay, "srtp_replay", false)                                         \
  X(kSrtpMalformed, "srtp_malformed", false) /* too short, no room, no keys */ \
  X(kTxFull, "tx_full", false)                                                 \
  X(kRingFull, "ring_full", false)      /* punt, ARP or hand-off ring full */

enum class Drop : uint8_t {
#define SLUICE_X(e, n, f) e,
  SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
      kCount
};

inline constexpr int kDropCount = int(Drop::kCount);

inline constexpr const char* kDropNames[] = {
#define SLUICE_X(e, n, f) n,
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
};

// Flow-level drops are stored per flow in a compact array indexed from 0.
inline constexpr int flow_drop_index(Drop d) {
  int i = 0;
#define SLUICE_X(e, n, f) \
  if (Drop::e == d) return f ? i : -1; \
  if (f) ++i;
  SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
  return -1;
}

inline constexpr int kFlowDropCount = [] {
  int i = 0;
#define SLUICE_X(e, n, f) if (f) ++i;
  SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
  return i;
}();

}  // namespace sluice
