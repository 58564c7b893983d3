#include "dataplane/core/packet.h"

#include <cstring>

namespace sluice {

using net::load16;
using net::load32;
using net::store16;
using net::store32;

namespace {

inline Outcome drop(Drop d) {
  Outcome o;
  o.action = Action::kDrop;
  o.drop = d;
  return o;
}

inline void count_flow_drop(FlowState& st, Drop d) {
  int i = flow_drop_index(d);
  // Single writer (the owning worker): relaxed load+store, no RMW needed.
  if (i >= 0) st.drops[i].store(st.drops[i].load(std::memory_order_relaxed) + 1,
                                std::memory_order_relaxed);
}

template <class T, class V>
inline void bump(std::atomic<T>& a, V v) {
  // Single writer: a plain add published with a relaxed store is enough for
  // readers that only display counters.
  a.store(T(a.load(std::memory_order_relaxed) + v), std::memory_order_relaxed);
}

inline bool is_multicast(const uint8_t* mac) { return mac[0] & 1; }

// Records RTP/RTCP header facts (SSRC, payload type, sequence gaps).
void observe_media(const FlowConfig& cfg, FlowState& st, const uint8_t* p, uint32_t n) {
  if (n < 8 || (p[0] >> 6) != 2) return;
  uint8_t pt = p[1];
  bool rtcp = cfg.kind == FlowKind::kRtcp ||
              (cfg.kind == FlowKind::kMux && pt >= 192 && pt <= 223);
  if (rtcp) {
    st.last_ssrc.store(load32(p + 4), std::memory_order_relaxed);
    return;
  }
  if (n < 12) return;
  uint32_t ssrc = load32(p + 8);
  uint16_t seq = load16(p + 2);
  st.last_pt.store(pt & 0x7f, std::memory_order_relaxed);
  if (st.seq_valid && ssrc == st.last_ssrc.load(std::memory_order_relaxed)) {
    uint16_t expect = uint16_t(st.last_seq.load(std::memory_order_relaxed) + 1);
    uint16_t delta = uint16_t(seq - expect);
    // A forward jump under 3000 counts the missing packets; anything else
    // (reordering, a late duplicate, a restart) counts as one gap.
    if (delta != 0) bump(st.seq_gaps, delta < 3000 ? delta : 1);
    if (delta >= 0x8000) return;  // late packet: keep the highest sequence
  } else {
    st.last_ssrc.store(ssrc, std::memory_order_relaxed);
    st.seq_valid = true;
  }
  st.last_seq.store(seq, std::memory_order_relaxed);
}

}  // namespace

LatchVerdict latch_decide(const FlowConfig& cfg, FlowState& st, uint32_t ip, uint16_t port) {
  uint64_t cur = st.latched.load(std::memory_order_relaxed);
  uint64_t me = pack_peer(ip, port);
  if (cur == me) return LatchVerdict::kAccept;
  uint8_t n = st.nsenders.load(std::memory_order_relaxed);
  auto add_sender = [&] {
    st.sender_ip[n].store(ip, std::memory_order_relaxed);
    st.sender_port[n].store(port, std::memory_order_relaxed);
    // Release: a reader of nsenders sees the sender it counts.
    st.nsenders.store(uint8_t(n + 1), std::memory_order_release);
  };
  // Release on `latched`: the reverse flow's worker reads it with acquire and
  // only needs the value itself, which is a single word.
  switch (cfg.latch) {
    case Latch::kStrict:
      if (ip != cfg.expect_ip || (cfg.expect_port && port != cfg.expect_port))
        return LatchVerdict::kReject;
      if (n == 0) add_sender();
      st.latched.store(me, std::memory_order_release);
      return cur ? LatchVerdict::kPeerChanged : LatchVerdict::kLatched;
    case Latch::kFirst:
      if (cur) return LatchVerdict::kReject;
      add_sender();
      st.latched.store(me, std::memory_order_release);
      return LatchVerdict::kLatched;
    case Latch::kAllowN: {
      for (uint8_t i = 0; i < n; ++i) {
        if (st.sender_ip[i].load(std::memory_order_relaxed) == ip &&
            st.sender_port[i].load(std::memory_order_relaxed) == port) {
          st.latched.store(me, std::memory_order_release);
          return LatchVerdict::kPeerChanged;
        }
      }
      if (n >= cfg.max_senders || n >= kMaxSenders) return LatchVerdict::kReject;
      add_sender();
      st.latched.store(me, std::memory_order_release);
      return cur ? LatchVerdict::kPeerChanged : LatchVerdict::kLatched;
    }
  }
  return LatchVerdict::kReject;
}

LatchVerdict latch_peek(const FlowConfig& cfg, const FlowState& st, uint32_t ip, uint16_t port) {
  uint64_t cur = st.latched.load(std::memory_order_relaxed);
  if (cur == pack_peer(ip, port)) return LatchVerdict::kAccept;
  uint8_t n = st.nsenders.load(std::memory_order_relaxed);
  switch (cfg.latch) {
    case Latch::kStrict:
      if (ip != cfg.expect_ip || (cfg.expect_port && port != cfg.expect_port))
        return LatchVerdict::kReject;
      return cur ? LatchVerdict::kPeerChanged : LatchVerdict::kLatched;
    case Latch::kFirst:
      return cur ? LatchVerdict::kReject : LatchVerdict::kLatched;
    case Latch::kAllowN:
      for (uint8_t i = 0; i < n; ++i)
        if (st.sender_ip[i].load(std::memory_order_relaxed) == ip &&
            st.sender_port[i].load(std::memory_order_relaxed) == port)
          return LatchVerdict::kPeerChanged;
      if (n >= cfg.max_senders || n >= kMaxSenders) return LatchVerdict::kReject;
      return cur ? LatchVerdict::kPeerChanged : LatchVerdict::kLatched;
  }
  return LatchVerdict::kReject;
}

uint32_t next_hop(const DataplaneView& dp, uint8_t port, uint32_t dst, uint8_t* out_port) {
  const PortInfo& p = dp.ports[port];
  uint8_t via = port;
  if (out_port) *out_port = port;
  uint32_t mask = net::prefix_mask(p.prefix);
  if ((dst & mask) == (p.ip & mask)) return dst;
  uint32_t best = 0, best_mask = 0;
  bool found = false;
  for (int i = 0; i < dp.nports; ++i) {
    const PortInfo& q = dp.ports[i];
    const uint32_t m = net::prefix_mask(q.prefix);
    if (i != port && q.ip && (dst & m) == (q.ip & m) && (!found || m > best_mask)) {
      best = dst;
      best_mask = m;
      via = uint8_t(i);
      found = true;
    }
  }
  for (int i = 0; i < dp.nroutes; ++i) {
    const RouteEntry& r = dp.routes[i];
    if ((dst & r.mask) != r.prefix) continue;
    if (!found || r.mask > best_mask || (r.mask == best_mask && r.port == port && via != port)) {
      best = r.next_hop;
      best_mask = r.mask;
      via = r.port;
      found = true;
    }
  }
  if (!found) return p.gateway;
  if (out_port) *out_port = via;
  return best;
}

Outcome process_frame(const DataplaneView& dp, uint8_t* buf, uint32_t off, uint32_t len,
                      uint8_t in_port, uint8_t worker, uint64_t now, bool hairpinned) {
  uint8_t* f = buf + off;
  if (len < net::kEthHdr) return drop(Drop::kMalformed);
  const PortInfo& ip_port = dp.ports[in_port];
  bool mcast = is_multicast(f);
  if (!mcast && std::memcmp(f, ip_port.mac.data(), 6) != 0) return drop(Drop::kNotForUs);

  uint32_t l2 = net::kEthHdr;
  uint16_t et = load16(f + 12);
  uint16_t vlan = 0;
  if (et == net::kEtherTypeVlan) {
    if (len < net::kEthHdr + net::kVlanHdr) return drop(Drop::kMalformed);
    vlan = load16(f + 14) & 0x0fff;
    et = load16(f + 16);
    l2 += net::kVlanHdr;
  }
  if (vlan != ip_port.vlan) return drop(Drop::kNotForUs);

  auto punt = [&]() {
    if (!ip_port.exception) return drop(Drop::kNoExceptionPath);
    Outcome o;
    o.action = Action::kPunt;
    return o;
  };

  if (et == net::kEtherTypeArp) {
    Outcome o;
    o.action = Action::kArp;
    return o;
  }
  if (et != net::kEtherTypeIpv4) return punt();  // IPv6 (ND), LLDP, ...

  if (len < l2 + net::kIpv4Hdr) return drop(Drop::kMalformed);
  uint8_t* ip = f + l2;
  uint32_t ihl = uint32_t(ip[0] & 0x0f) * 4;
  uint32_t tot = load16(ip + 2);
  if ((ip[0] >> 4) != 4 || ihl < net::kIpv4Hdr || tot < ihl || l2 + tot > len)
    return drop(Drop::kMalformed);
  uint32_t dst = load32(ip + 16);
  int aidx = dp.flows->address_index(dst);
  if (aidx < 0) {
    // Broadcast/multicast IP (DHCP, mDNS, ...) belongs to the kernel.
    if (mcast || (dst >> 28) == 0xe || dst == 0xffffffffu) return punt();
    return drop(Drop::kNotForUs);
  }
  if (!net::ipv4_header_ok(ip, ihl)) return drop(Drop::kBadIpChecksum);
  if (ip[9] != net::kProtoUdp) return punt();  // ICMP, TCP (SIP over TCP/TLS)
  uint16_t frag = load16(ip + 6);
  bool first_or_whole = (frag & 0x1fff) == 0;
  if (!first_or_whole) return punt();  // the kernel reassembles (large SIP)
  uint8_t* udp = ip + ihl;
  if (tot < ihl + net::kUdpHdr) return drop(Drop::kMalformed);
  uint16_t dport = load16(udp + 2);
  if (dport < dp.media_min || dport > dp.media_max) return punt();
  if (frag & 0x2000) return drop(Drop::kFragment);
  uint32_t udp_len = load16(udp + 4);
  if (udp_len < net::kUdpHdr || udp_len > tot - ihl) return drop(Drop::kMalformed);

  FlowSlot* slot = dp.flows->lookup_index(aidx, dport);
  if (!slot) return drop(Drop::kNoFlow);
  const FlowConfig& cfg = slot->config();
  if (cfg.worker != worker) {
    // The flow's state has one writer; hand the packet to it untouched.
    Outcome o;
    o.action = Action::kHandoff;
    o.worker = cfg.worker;
    return o;
  }
  FlowState& st = slot->st;
  uint32_t src = load32(ip + 12);
  uint16_t sport = load16(udp);
  Outcome out;
  // SRTP flows: the crypto state lives beside the flow table. A packet that
  // must be decrypted latches only once it authenticates (a forged packet
  // must not steer the media), so the decision is only peeked at here.
  // The state itself is not touched here (the engine prefetches it for the
  // whole burst); its address is arithmetic.
  const bool cc = cfg.crypto & 1;
  srtp::CryptoState* cs = cc ? dp.crypto->get(dp.flows->slot_index(slot)) : nullptr;
  const bool defer_latch = cfg.crypto & 2;
  LatchVerdict lv = defer_latch ? latch_peek(cfg, st, src, sport) : latch_decide(cfg, st, src, sport);
  if (lv == LatchVerdict::kReject) {
    count_flow_drop(st, Drop::kLatchRejected);
    return drop(Drop::kLatchRejected);
  }
  if (lv != LatchVerdict::kAccept && !defer_latch) {
    out.event.kind = lv == LatchVerdict::kLatched ? EventKind::kLatched : EventKind::kPeerChanged;
    out.event.slot = dp.flows->slot_index(slot);
    out.event.ip = src;
    out.event.peer_port = sport;
  }
  if (!defer_latch) st.last_seen_tsc.store(now, std::memory_order_relaxed);

  if (cfg.police_rate) {
    // GCRA: one packet per interval, up to `burst` packets early.
    uint64_t interval = dp.tsc_hz / cfg.police_rate;
    uint64_t tat = st.police_tat > now ? st.police_tat : now;
    if (tat - now >= interval * cfg.police_burst) {
      count_flow_drop(st, Drop::kPoliced);
      Outcome o = drop(Drop::kPoliced);
      o.event = out.event;
      return o;
    }
    st.police_tat = tat + interval;
  }

  if (!cc) observe_media(cfg, st, udp + net::kUdpHdr, udp_len - net::kUdpHdr);

  auto fail = [&](Drop d) {
    count_flow_drop(st, d);
    Outcome o = drop(d);
    if (out.event.kind == EventKind::kNone || d == Drop::kNoNeighbor) o.event = out.event;
    return o;
  };

  // Destination: the sender latched on the reverse flow (keyed at our egress
  // source), else the configured destination.
  uint32_t dip = cfg.dst_ip;
  uint16_t dport_out = cfg.dst_port;
  if (FlowSlot* rev = dp.flows->lookup(cfg.src_ip, cfg.src_port)) {
    // Acquire pairs with latch_decide's release store on the other worker.
    uint64_t l = rev->st.latched.load(std::memory_order_acquire);
    if (l & kLatchedValid) {
      dip = uint32_t(l >> 16);
      dport_out = uint16_t(l);
    }
  }
  if (dip == 0 || dport_out == 0) return fail(Drop::kNoRoute);

  uint8_t ttl = ip[8];
  if (cfg.ttl_mode == TtlMode::kDecrement) {
    if (ttl <= 1) return fail(Drop::kTtlExpired);
    --ttl;
  } else {
    ttl = cfg.ttl_value;
  }

  // NAT loopback: a destination that is one of our own addresses is not
  // sent (no neighbour answers for it); the frame is addressed to the port
  // that owns it and comes back in there.
  const int hp = own_port(dp, dip);
  if (hp >= 0 && hairpinned) return fail(Drop::kHairpinLoop);
  uint8_t out_port = hp >= 0 ? uint8_t(hp) : cfg.egress_port;
  net::Mac dmac;
  if (hp >= 0) {
    dmac = dp.ports[out_port].mac;
  } else {
    uint32_t nh = next_hop(dp, cfg.egress_port, dip, &out_port);
    if (!nh) return fail(Drop::kNoRoute);
    if (!dp.neighbors->lookup(nh, &dmac)) {
      Outcome o = fail(Drop::kNoNeighbor);
      if (o.event.kind == EventKind::kNone) {
        o.event.kind = EventKind::kResolve;
        o.event.ip = nh;
        o.event.port = out_port;
      }
      return o;
    }
  }
  const PortInfo& eg = dp.ports[out_port];
  out.hairpin = hp >= 0;

  // Rewrite in place. The L2 header may grow or shrink by a VLAN tag.
  uint32_t new_l2 = eg.vlan ? net::kEthHdr + net::kVlanHdr : net::kEthHdr;
  if (off + l2 < new_l2) return fail(Drop::kMalformed);  // no headroom
  uint32_t noff = off + l2 - new_l2;
  uint8_t* nf = buf + noff;
  std::memcpy(nf, dmac.data(), 6);
  std::memcpy(nf + 6, eg.mac.data(), 6);
  if (eg.vlan) {
    store16(nf + 12, net::kEtherTypeVlan);
    store16(nf + 14, eg.vlan);
    store16(nf + 16, net::kEtherTypeIpv4);
  } else {
    store16(nf + 12, net::kEtherTypeIpv4);
  }
  ip[1] = uint8_t(cfg.dscp << 2 | (ip[1] & 3));  // keep ECN
  ip[8] = ttl;
  store32(ip + 12, cfg.src_ip);
  store32(ip + 16, dip);
  store16(udp, cfg.src_port);
  store16(udp + 2, dport_out);
  if (cc) {
    // Lengths and checksums follow the payload's new size: finish_crypto().
    out.action = Action::kCrypto;
    out.out_port = out_port;
    out.off = noff;
    CryptoWork& w = out.crypto;
    w.slot = slot;
    w.state = cs;
    w.l3 = uint32_t(ip - buf);
    w.ihl = ihl;
    w.src_ip = src;
    w.src_port = sport;
    w.l2 = uint8_t(new_l2);
    const uint8_t* pl = udp + net::kUdpHdr;
    w.rtcp = cfg.kind == FlowKind::kRtcp ||
             (cfg.kind == FlowKind::kMux && udp_len >= net::kUdpHdr + 2 && pl[1] >= 192 &&
              pl[1] <= 223);
    w.latch = defer_latch && lv != LatchVerdict::kAccept;
    return out;
  }
  store16(ip + 10, net::ipv4_header_checksum(ip, ihl));
  // Full UDP checksum: frames from veth/af_packet often carry an unfinished
  // (offloaded) checksum, so an incremental update would be wrong.
  store16(udp + 6, net::udp4_checksum(cfg.src_ip, dip, udp, udp_len));

  bump(st.packets, 1);
  bump(st.bytes, tot);
  out.action = Action::kForward;
  out.out_port = out_port;
  out.off = noff;
  out.len = new_l2 + tot;  // drops Ethernet padding
  return out;
}

Outcome finish_crypto(const DataplaneView& dp, uint8_t* buf, const Outcome& o, srtp::Verdict v,
                      uint32_t payload_len, uint64_t now) {
  const CryptoWork& w = o.crypto;
  switch (v) {
    case srtp::Verdict::kOk: break;
    case srtp::Verdict::kAuthFailed: return drop(Drop::kSrtpAuth);
    case srtp::Verdict::kReplay: return drop(Drop::kSrtpReplay);
    case srtp::Verdict::kMalformed: return drop(Drop::kSrtpMalformed);
  }
  FlowSlot& slot = *w.slot;
  FlowState& st = slot.st;
  const FlowConfig& cfg = slot.config();
  Outcome out = o;
  out.event = WorkerEvent{};
  if (w.latch) {
    LatchVerdict lv = latch_decide(cfg, st, w.src_ip, w.src_port);
    if (lv == LatchVerdict::kReject) {
      count_flow_drop(st, Drop::kLatchRejected);
      return drop(Drop::kLatchRejected);
    }
    if (lv != LatchVerdict::kAccept) {
      out.event.kind = lv == LatchVerdict::kLatched ? EventKind::kLatched : EventKind::kPeerChanged;
      out.event.slot = dp.flows->slot_index(&slot);
      out.event.ip = w.src_ip;
      out.event.peer_port = w.src_port;
    }
  }
  st.last_seen_tsc.store(now, std::memory_order_relaxed);
  uint8_t* ip = buf + w.l3;
  uint8_t* udp = ip + w.ihl;
  // The decrypted (or plain) side is what the flow's statistics describe.
  observe_media(cfg, st, udp + net::kUdpHdr, payload_len);
  uint32_t udp_len = net::kUdpHdr + payload_len;
  uint32_t tot = w.ihl + udp_len;
  store16(ip + 2, uint16_t(tot));
  store16(ip + 10, net::ipv4_header_checksum(ip, w.ihl));
  store16(udp + 4, uint16_t(udp_len));
  store16(udp + 6, net::udp4_checksum(load32(ip + 12), load32(ip + 16), udp, udp_len));
  bump(st.packets, 1);
  bump(st.bytes, tot);
  out.action = Action::kForward;
  out.len = w.l2 + tot;
  return out;
}

}  // namespace sluice
