// The packet core: parse, classify, flow lookup, latch, police, rewrite.
// Plain C++ over byte buffers; the worker wraps it around rte_mbuf and the
// unit tests call it directly on synthetic frames.
#pragma once

#include <cstdint>

#include "dataplane/core/drops.h"
#include "dataplane/core/flow_table.h"
#include "dataplane/core/neighbor.h"
#include "dataplane/core/net.h"
#include "dataplane/core/srtp.h"

namespace sluice {

inline constexpr int kMaxPorts = 8;

struct PortInfo {
  net::Mac mac{};
  uint32_t ip = 0;
  uint8_t prefix = 24;
  uint32_t gateway = 0;
  uint16_t vlan = 0;       // 0: untagged
  bool exception = false;  // has an exception path to the kernel
};

struct RouteEntry {
  uint32_t prefix = 0;
  uint32_t mask = 0;
  uint32_t next_hop = 0;
  uint8_t port = 0;
};

// What the core needs to know about the dataplane; immutable while workers
// run (except the tables, which have their own rules).
struct DataplaneView {
  FlowTable* flows = nullptr;
  srtp::CryptoTable* crypto = nullptr;  // SRTP state of flows with crypto
  NeighborTable* neighbors = nullptr;
  PortInfo ports[kMaxPorts];
  int nports = 0;
  RouteEntry routes[32];
  int nroutes = 0;
  // The port each flow-table address belongs to, by address index (-1:
  // none): where media addressed to ourselves comes back in.
  int8_t address_port[FlowTable::kMaxAddresses] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                   -1, -1, -1, -1, -1, -1, -1, -1};
  uint16_t media_min = 20000;
  uint16_t media_max = 31000;
  uint64_t tsc_hz = 1000000000;
};

// kCrypto: forwarding is decided and the headers are rewritten, but the
// payload still needs SRTP work; the worker batches it (srtp::Engine) and
// then calls finish_crypto().
enum class Action : uint8_t { kForward, kDrop, kPunt, kArp, kHandoff, kCrypto };

enum class EventKind : uint8_t { kNone, kLatched, kPeerChanged, kResolve };

// An event a worker reports to the control lcore (fixed size, ring element).
struct WorkerEvent {
  EventKind kind = EventKind::kNone;
  uint8_t port = 0;
  uint16_t peer_port = 0;
  uint32_t slot = 0;
  uint32_t ip = 0;
  uint32_t pad = 0;
};
static_assert(sizeof(WorkerEvent) == 16, "ring element size");

// What finish_crypto() needs from process_frame().
struct CryptoWork {
  FlowSlot* slot = nullptr;
  srtp::CryptoState* state = nullptr;  // the engine loads its current config
  uint32_t l3 = 0;        // IPv4 header offset in the buffer
  uint32_t ihl = 0;
  uint32_t src_ip = 0;    // the sender, for a latch decided after authentication
  uint16_t src_port = 0;
  uint8_t l2 = 0;         // rewritten L2 header length
  bool rtcp = false;
  bool latch = false;     // latch_decide() once the packet authenticates
};

struct Outcome {
  Action action = Action::kDrop;
  Drop drop = Drop::kMalformed;
  uint8_t out_port = 0;
  uint8_t worker = 0;  // kHandoff: the owning worker
  // kForward/kCrypto: the destination is one of our own addresses (a
  // teleworker-to-teleworker call whose PBX passed the relay's address
  // through). The frame is addressed to port out_port; the worker feeds it
  // back in as received there instead of sending it.
  bool hairpin = false;
  uint32_t off = 0;    // kForward: new frame start within the buffer
  uint32_t len = 0;    // kForward: new frame length
  WorkerEvent event;   // kind != kNone: report it
  CryptoWork crypto;   // kCrypto
};

// Processes one frame received on in_port by `worker`. The frame occupies
// buf[off, off+len); `off` bytes of headroom precede it (VLAN tags may be
// added in front). On kForward the frame to send is buf[out.off, +out.len).
// `hairpinned`: the frame is one we relayed to ourselves; it may not be
// relayed to ourselves again (Drop::kHairpinLoop), so a loop of flows that
// name each other's ports cannot spin.
Outcome process_frame(const DataplaneView& dp, uint8_t* buf, uint32_t off, uint32_t len,
                      uint8_t in_port, uint8_t worker, uint64_t now_tsc,
                      bool hairpinned = false);

static_assert(FlowTable::kMaxAddresses == 16, "address_port's initialiser");

// The index of the port that owns address ip (its own or an extra address),
// or -1.
inline int own_port(const DataplaneView& dp, uint32_t ip) {
  int a = dp.flows->address_index(ip);
  return a < 0 ? -1 : dp.address_port[a];
}

// Completes a kCrypto outcome after the engine ran: on success the latch (if
// deferred), the lengths and checksums; else a drop. payload_len is the UDP
// payload length the engine left.
Outcome finish_crypto(const DataplaneView& dp, uint8_t* buf, const Outcome& o,
                      srtp::Verdict v, uint32_t payload_len, uint64_t now_tsc);

// The latching decision, exposed for table-driven tests.
enum class LatchVerdict : uint8_t { kAccept, kLatched, kPeerChanged, kReject };
LatchVerdict latch_decide(const FlowConfig& cfg, FlowState& st, uint32_t ip, uint16_t port);
// What latch_decide would answer, without changing anything.
LatchVerdict latch_peek(const FlowConfig& cfg, const FlowState& st, uint32_t ip, uint16_t port);

// Next hop for dst, for a flow whose egress is `port`; 0 if none. A
// destination on the port's own network goes there directly. Otherwise the
// most specific of every other port's network and every static route wins,
// whichever port it belongs to (ties go to `port`), before `port`'s gateway:
// a LAN device that reached the relay's public address (NAT loopback at the
// network edge) gets its media back on the inside, from that address.
// *out_port (if given) is the port the packet leaves through.
uint32_t next_hop(const DataplaneView& dp, uint8_t port, uint32_t dst,
                  uint8_t* out_port = nullptr);

}  // namespace sluice
