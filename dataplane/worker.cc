// The worker loop: run to completion, one burst at a time.
//
//   RX burst (each assigned queue, then the hand-off inbox)
//     -> process_frame (parse, classify, lookup, latch, police, rewrite)
//     -> SRTP packets of the burst: one srtp::Engine batch (all cipher jobs in
//        flight together), then finish_crypto (deferred latch, checksums)
//     -> buffered TX per port, flushed at the end of every loop
//   frames relayed to one of our own addresses (NAT loopback) are kept aside
//   and processed again, as received on that address's port, after the batch
//   that produced them; a flow owned by another worker gets them by hand-off
//   report a QSBR quiescent state once per loop
//   back off with short sleeps when idle (offline for QSBR while asleep)
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <iterator>
#include <thread>

#include "dataplane/runtime.h"

namespace sluice {

namespace {

struct TxBuffer {
  rte_mbuf* pkts[kBurst];
  uint16_t n = 0;
};

// Counters are accumulated per burst in locals and published once.
struct BurstCounters {
  uint64_t rx = 0, tx = 0, relayed = 0, handed_off = 0, hairpinned = 0;
  uint64_t drops[kDropCount] = {};
};

template <class T>
inline void add(std::atomic<T>& a, T v) {
  // Single writer per counter: relaxed load+store is a cheaper add.
  if (v) a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

}  // namespace

int Runtime::worker_main(Worker& w) {
  const DataplaneView& dp = view_;
  TxBuffer tx[kMaxPorts];
  rte_mbuf* pkts[kBurst];
  uint32_t idle_polls = 0;
  uint32_t sleep_us = 1;
  const uint32_t max_sleep = cfg_.idle_sleep_max_us();
  uint32_t last_resolve_ip = 0;
  uint64_t last_resolve_tsc = 0;
  const uint64_t resolve_gap = hz_ / 1000;

  rte_rcu_qsbr_thread_online(qsbr_, w.id);

  auto flush = [&](int port, BurstCounters& bc) {
    TxBuffer& b = tx[port];
    if (!b.n) return;
    uint16_t sent = rte_eth_tx_burst(ports_[size_t(port)]->port_id, w.id, b.pkts, b.n);
    bc.tx += sent;
    if (sent < b.n) {
      bc.drops[int(Drop::kTxFull)] += b.n - sent;
      rte_pktmbuf_free_bulk(b.pkts + sent, b.n - sent);
    }
    b.n = 0;
  };

  // SRTP work of the current burst.
  srtp::Engine engine;
  struct PendingCrypto {
    rte_mbuf* m;
    Outcome o;
  };
  PendingCrypto pend[srtp::Engine::kMaxBatch];
  srtp::Op ops[srtp::Engine::kMaxBatch];
  int npend = 0;
  std::function<void(BurstCounters&, uint64_t)> run_crypto;
  // Frames relayed to ourselves, waiting to be processed again. At most one
  // per frame processed since the last drain (a frame that comes back is not
  // relayed to ourselves twice), so kBurst + the crypto batch bound it.
  rte_mbuf* hairpins[kBurst + srtp::Engine::kMaxBatch];
  unsigned nhair = 0;

  // An mbuf's `port` carries the ingress port index through the hand-off
  // ring; this bit says the frame was relayed to ourselves already.
  constexpr uint16_t kHairpinMark = 0x100;

  auto dispatch = [&](rte_mbuf* m, const Outcome& o, uint8_t in_idx, bool hairpinned,
                      uint64_t now, BurstCounters& bc) {
    if (o.event.kind != EventKind::kNone) {
      bool send = true;
      if (o.event.kind == EventKind::kResolve) {
        // One resolve request per next hop per millisecond is plenty.
        send = o.event.ip != last_resolve_ip || now - last_resolve_tsc > resolve_gap;
        last_resolve_ip = o.event.ip;
        last_resolve_tsc = now;
      }
      if (send) rte_ring_sp_enqueue_elem(w.events, const_cast<WorkerEvent*>(&o.event), sizeof(WorkerEvent));
    }
    switch (o.action) {
      case Action::kForward: {
        m->data_off = uint16_t(o.off);
        m->data_len = uint16_t(o.len);
        m->pkt_len = o.len;
        m->ol_flags = 0;
        bc.relayed++;
        if (o.hairpin) {
          if (nhair == std::size(hairpins)) {  // cannot happen (see above); never overrun
            bc.drops[int(Drop::kRingFull)]++;
            rte_pktmbuf_free(m);
            return;
          }
          bc.hairpinned++;
          m->port = o.out_port;
          hairpins[nhair++] = m;
          return;
        }
        TxBuffer& b = tx[o.out_port];
        b.pkts[b.n++] = m;
        if (b.n == kBurst) flush(o.out_port, bc);
        return;
      }
      case Action::kCrypto:
        pend[npend].m = m;
        pend[npend].o = o;
        if (++npend == srtp::Engine::kMaxBatch) run_crypto(bc, now);
        return;
      case Action::kDrop:
        bc.drops[int(o.drop)]++;
        rte_pktmbuf_free(m);
        return;
      case Action::kPunt:
      case Action::kArp:
        m->port = in_idx;  // the control lcore reads the port index here
        if (rte_ring_sp_enqueue(w.punt, m) != 0) {
          bc.drops[int(Drop::kRingFull)]++;
          rte_pktmbuf_free(m);
        }
        return;
      case Action::kHandoff:
        m->port = uint16_t(in_idx | (hairpinned ? kHairpinMark : 0));
        if (rte_ring_mp_enqueue(workers_[o.worker]->inbox, m) != 0) {
          bc.drops[int(Drop::kRingFull)]++;
          rte_pktmbuf_free(m);
        } else {
          bc.handed_off++;
        }
        return;
    }
  };

  run_crypto = [&](BurstCounters& bc, uint64_t now) {
    if (!npend) return;
    int n = npend;
    npend = 0;
    for (int i = 0; i < n; ++i) {
      const CryptoWork& cw = pend[i].o.crypto;
      uint8_t* buf = static_cast<uint8_t*>(pend[i].m->buf_addr);
      uint8_t* udp = buf + cw.l3 + cw.ihl;
      srtp::Op& op = ops[i];
      op.p = udp + 8;
      op.len = uint32_t(net::load16(udp + 4)) - 8;
      op.room = uint32_t(pend[i].m->buf_len - (op.p - buf));
      op.st = cw.state;
      op.cfg = nullptr;  // the engine reads the flow's current config
      op.rtcp = cw.rtcp;
    }
    engine.run(ops, n, w.id);
    for (int i = 0; i < n; ++i) {
      rte_mbuf* m = pend[i].m;
      Outcome f = finish_crypto(dp, static_cast<uint8_t*>(m->buf_addr), pend[i].o, ops[i].verdict,
                                ops[i].len, now);
      dispatch(m, f, 0, false, now, bc);
    }
  };

  auto process = [&](rte_mbuf* m, uint8_t in_idx, bool hairpinned, uint64_t now,
                     BurstCounters& bc) {
    // af_packet (and NICs with stripping on) hand us the 802.1Q tag out of
    // band; put it back so the core sees the frame as it was on the wire.
    if ((m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) && rte_vlan_insert(&m) != 0) {
      bc.drops[int(Drop::kMalformed)]++;
      rte_pktmbuf_free(m);
      return;
    }
    if (m->nb_segs != 1 && rte_pktmbuf_linearize(m) != 0) {
      bc.drops[int(Drop::kMalformed)]++;
      rte_pktmbuf_free(m);
      return;
    }
    Outcome o = process_frame(dp, static_cast<uint8_t*>(m->buf_addr), m->data_off, m->data_len,
                              in_idx, w.id, now, hairpinned);
    dispatch(m, o, in_idx, hairpinned, now, bc);
  };

  // Crypto of the current batch, then the frames it relayed to ourselves
  // (whose own crypto runs in a second batch; those cannot come back again).
  auto finish_batch = [&](BurstCounters& bc, uint64_t now) {
    run_crypto(bc, now);
    while (nhair) {
      rte_mbuf* again[kBurst + srtp::Engine::kMaxBatch];
      unsigned n = nhair;
      std::memcpy(again, hairpins, n * sizeof(again[0]));
      nhair = 0;
      for (unsigned i = 0; i < n; ++i) process(again[i], uint8_t(again[i]->port), true, now, bc);
      run_crypto(bc, now);
    }
  };

  while (!stopping()) {
    BurstCounters bc;
    uint64_t now = rte_rdtsc();
    for (const Worker::RxQueue& q : w.rxq) {
      uint16_t n = rte_eth_rx_burst(q.port, q.queue, pkts, kBurst);
      bc.rx += n;
      for (uint16_t i = 0; i < n; ++i) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
        process(pkts[i], q.index, false, now, bc);
      }
      finish_batch(bc, now);
    }
    unsigned nh = rte_ring_sc_dequeue_burst(w.inbox, reinterpret_cast<void**>(pkts), kBurst, nullptr);
    for (unsigned i = 0; i < nh; ++i)
      process(pkts[i], uint8_t(pkts[i]->port), (pkts[i]->port & kHairpinMark) != 0, now, bc);
    finish_batch(bc, now);
    unsigned ni = rte_ring_sc_dequeue_burst(w.inject, reinterpret_cast<void**>(pkts), kBurst, nullptr);
    for (unsigned i = 0; i < ni; ++i) {
      uint8_t port = uint8_t(pkts[i]->port);
      TxBuffer& b = tx[port];
      b.pkts[b.n++] = pkts[i];
      if (b.n == kBurst) flush(port, bc);
    }
    for (int p = 0; p < dp.nports; ++p) flush(p, bc);

    add(w.c.rx, bc.rx);
    add(w.c.tx, bc.tx);
    add(w.c.relayed, bc.relayed);
    add(w.c.handed_off, bc.handed_off);
    add(w.c.hairpinned, bc.hairpinned);
    for (int d = 0; d < kDropCount; ++d) add(w.c.drops[d], bc.drops[d]);

    // Nothing read from the flow table survives past this point.
    rte_rcu_qsbr_quiescent(qsbr_, w.id);

    if (bc.rx || nh || ni) {
      idle_polls = 0;
      sleep_us = 1;
      continue;
    }
    if (max_sleep == 0 || ++idle_polls < 256) continue;
    // Idle: sleep, offline so that the control lcore's grace periods do not
    // wait for us. The first packet after a sleep waits at most max_sleep.
    rte_rcu_qsbr_thread_offline(qsbr_, w.id);
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    rte_rcu_qsbr_thread_online(qsbr_, w.id);
    add(w.c.idle_sleeps, uint64_t(1));
    sleep_us = std::min(sleep_us * 2, max_sleep);
  }
  rte_rcu_qsbr_thread_offline(qsbr_, w.id);
  return 0;
}

}  // namespace sluice
