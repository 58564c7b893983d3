#include "bench/generator.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "dataplane/core/net.h"

namespace sluice::bench {

namespace {

// Byte-order helpers are the packet core's (header-only).
constexpr auto put16 = net::store16;
constexpr auto put32 = net::store32;
constexpr auto get16 = net::load16;
constexpr auto get32 = net::load32;

// One's-complement sum of big-endian 16-bit words, not folded.
uint64_t sum16(const uint8_t* p, size_t n, uint64_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += get16(p + i);
  if (n & 1) s += uint32_t(p[n - 1]) << 8;
  return s;
}
inline uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}

constexpr unsigned kBurst = 32;

}  // namespace

bool Generator::marked(const rte_mbuf* m, uint64_t* tsc) const {
  const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
  if (crypto_) {
    // The payload may be encrypted: our SSRC range, and the TSC's low 32
    // bits from the RTP timestamp (round trips are far shorter than a wrap).
    if (m->data_len < kOffPayload || (get32(d + kOffRtp + 8) >> 24) != 0x51) return false;
    uint64_t now = rte_rdtsc();
    *tsc = now - uint32_t(uint32_t(now) - get32(d + kOffRtp + 4));
    return true;
  }
  if (m->data_len < kOffFlow + 4) return false;
  uint32_t magic;
  std::memcpy(&magic, d + kOffMagic, 4);
  if (magic != kMagic) return false;
  std::memcpy(tsc, d + kOffTsc, 8);
  return true;
}

bool Generator::init(const std::string& file_prefix, const std::string& memif_socket,
                     const std::string& mac, std::string* err) {
  std::string vdev = "net_memif0,role=server,id=0,socket=" + memif_socket + ",mac=" + mac;
  std::vector<std::string> args = {"sluice-bench",  "-l",          "0",
                                   "--main-lcore",  "0",           "--no-huge",
                                   "-m",            "512",         "--file-prefix",
                                   file_prefix,     "--no-pci",    "--vdev",
                                   vdev,            "--log-level=warning", "--no-telemetry"};
  // Debugging aid: SLUICE_BENCH_GEN_LOG=pmd.net.memif:debug (for example)
  // raises the generator's EAL log levels.
  if (const char* l = std::getenv("SLUICE_BENCH_GEN_LOG")) {
    args.push_back("--log-level=debug");
    args.push_back(std::string("--log-level=") + l);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  // DPDK logs to stdout by default; keep stdout for the report (--json).
  rte_openlog_stream(stderr);
  if (rte_eal_init(int(argv.size()), argv.data()) < 0) {
    *err = std::string("generator: EAL initialisation failed: ") + rte_strerror(rte_errno);
    return false;
  }
  eal_ = true;
  runtime_dir_ = rte_eal_get_runtime_dir();
  hz_ = rte_get_tsc_hz();
  // A failed vdev probe does not fail rte_eal_init: check the port.
  if (rte_eth_dev_get_port_by_name("net_memif0", &port_) != 0) {
    *err = "generator: the memif port did not probe (" + vdev + ")";
    return false;
  }
  pool_ = rte_pktmbuf_pool_create("gen_mbufs", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                  int(rte_socket_id()));
  if (!pool_) {
    *err = std::string("generator: mbuf pool: ") + rte_strerror(rte_errno);
    return false;
  }
  rte_eth_conf conf{};
  int rc = rte_eth_dev_configure(port_, 1, 1, &conf);
  if (rc == 0) rc = rte_eth_rx_queue_setup(port_, 0, 1024, rte_socket_id(), nullptr, pool_);
  if (rc == 0) rc = rte_eth_tx_queue_setup(port_, 0, 1024, rte_socket_id(), nullptr);
  if (rc != 0) {
    *err = std::string("generator: port setup: ") + rte_strerror(-rc);
    return false;
  }
  return true;
}

bool Generator::start(std::string* err) {
  // The memif server listens from probe on, and accepts a client once its
  // port is started; it takes the next client after one disconnects.
  int rc = rte_eth_dev_start(port_);
  if (rc != 0) {
    *err = std::string("generator: cannot start the memif port: ") + rte_strerror(-rc);
    return false;
  }
  started_ = true;
  return true;
}

bool Generator::link_up() const {
  rte_eth_link link{};
  rte_eth_link_get_nowait(port_, &link);
  return link.link_status == RTE_ETH_LINK_UP;
}

void Generator::flush_rx() {
  uint64_t rx = 0, bad = 0;
  for (int i = 0; i < 256 && drain_rx(&rx, &bad) > 0; ++i) {
  }
}

void Generator::cleanup() {
  if (!eal_) return;
  if (started_) rte_eth_dev_stop(port_);
  started_ = false;
  rte_eth_dev_close(port_);
  if (pool_) rte_mempool_free(pool_);
  pool_ = nullptr;
  rte_eal_cleanup();
  eal_ = false;
}

void Generator::setup(const GenParams& p) {
  uint32_t payload = std::max(p.payload_bytes, kMinPayload);
  crypto_ = p.crypto;
  reply_delta_ = p.reply_delta;
  relay_hops_ = p.relay_hops;
  tag_ = p.keys ? srtp::info(p.keys->suite()).srtp_tag : 0;
  frame_len_ = kOffPayload + payload + tag_;
  samples_ = p.samples_per_packet;
  src_ip_ = p.src_ip;
  src_mac_ = p.src_mac;
  dst_mac_ = p.dst_mac;
  tmpl_.assign(frame_len_, 0);
  uint8_t* f = tmpl_.data();
  std::memcpy(f, p.dst_mac.data(), 6);
  std::memcpy(f + 6, p.src_mac.data(), 6);
  put16(f + 12, 0x0800);
  uint8_t* ip = f + kOffIp;
  ip[0] = 0x45;
  ip[1] = 46 << 2;  // EF, as a media source would mark it
  put16(ip + 2, uint16_t(frame_len_ - kOffIp));
  put16(ip + 6, 0x4000);  // DF
  ip[8] = 64;
  ip[9] = 17;
  put32(ip + 12, p.src_ip);
  uint8_t* udp = f + kOffUdp;
  uint16_t udp_len = uint16_t(frame_len_ - kOffUdp);
  put16(udp + 4, udp_len);
  uint8_t* rtp = f + kOffRtp;
  rtp[0] = 0x80;
  rtp[1] = p.payload_type & 0x7f;
  std::memcpy(f + kOffMagic, &kMagic, 4);
  // Filler that looks like audio rather than zeros.
  for (uint32_t i = kOffFlow + 4; i < frame_len_; ++i) f[i] = uint8_t(0xd5 ^ i);

  size_t n = p.dst_ips.size();
  flows_.assign(n, GenFlow{});
  std::vector<uint8_t> scratch(tmpl_);
  for (size_t i = 0; i < n; ++i) {
    GenFlow& g = flows_[i];
    g.dst_ip = p.dst_ips[i];
    g.dst_port = p.dst_ports[i];
    g.src_port = p.src_ports[i];
    uint8_t* s = scratch.data();
    put32(s + kOffIp + 16, g.dst_ip);
    put16(s + kOffIp + 10, 0);
    g.ip_csum = uint16_t(~fold(sum16(s + kOffIp, 20)));
    put16(s + kOffUdp, g.src_port);
    put16(s + kOffUdp + 2, g.dst_port);
    put16(s + kOffUdp + 6, 0);
    put32(s + kOffRtp + 8, 0x51000000u + uint32_t(i));  // SSRC
    uint32_t idx = uint32_t(i);
    std::memcpy(s + kOffFlow, &idx, 4);
    // Pseudo-header + UDP header + payload with seq, RTP timestamp and TSC
    // zero (they are zero in the scratch frame); those are added per packet.
    uint64_t sum = sum16(s + kOffIp + 12, 8);  // source and destination
    sum += 17 + udp_len;
    sum = sum16(s + kOffUdp, udp_len, sum);
    g.udp_base = fold(sum);
    g.seq = 0;
  }
  cursor_ = 0;
  if (p.keys) {
    tx_cfg_.tx = p.keys;
    states_.reset(new srtp::CryptoState[n ? n : 1]);
    for (size_t i = 0; i < n; ++i) states_[i].reset();
    engine_ = std::make_unique<srtp::Engine>();
  }
}

void Generator::fill(rte_mbuf** ms, unsigned n, uint64_t tsc) {
  const uint32_t len = frame_len_;
  const size_t nflows = flows_.size();
  for (unsigned k = 0; k < n; ++k) {
    rte_mbuf* m = ms[k];
    uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
    rte_memcpy(d, tmpl_.data(), len);
    m->data_len = uint16_t(len);
    m->pkt_len = len;
    size_t i = cursor_;
    cursor_ = i + 1 == nflows ? 0 : i + 1;
    GenFlow& g = flows_[i];
    uint16_t seq = g.seq++;
    uint32_t ts = uint32_t(seq) * samples_;
    put16(d + kOffIp + 10, g.ip_csum);
    put32(d + kOffIp + 16, g.dst_ip);
    put16(d + kOffUdp, g.src_port);
    put16(d + kOffUdp + 2, g.dst_port);
    put16(d + kOffRtp + 2, seq);
    put32(d + kOffRtp + 4, ts);
    put32(d + kOffRtp + 8, 0x51000000u + uint32_t(i));
    std::memcpy(d + kOffTsc, &tsc, 8);
    uint32_t idx = uint32_t(i);
    std::memcpy(d + kOffFlow, &idx, 4);
    if (crypto_) {
      ts = uint32_t(tsc);  // readable in the clear even when the payload is not
      put32(d + kOffRtp + 4, ts);
    }
    if (engine_) {
      put16(d + kOffUdp + 6, 0);  // no UDP checksum: the payload changes below
      continue;
    }
    uint64_t sum = uint64_t(g.udp_base) + seq + (ts >> 16) + (ts & 0xffff);
    sum = sum16(d + kOffTsc, 8, sum);
    uint16_t c = uint16_t(~fold(sum));
    put16(d + kOffUdp + 6, c ? c : 0xffff);
  }
  if (engine_) {
    // Protect the RTP part of every frame of this burst in one batch.
    srtp::Op ops[kBurst];
    for (unsigned k = 0; k < n; ++k) {
      uint8_t* d = rte_pktmbuf_mtod(ms[k], uint8_t*);
      ops[k].p = d + kOffRtp;
      ops[k].len = len - kOffRtp - tag_;
      ops[k].room = len - kOffRtp;
      ops[k].st = &states_[get32(d + kOffRtp + 8) & 0xffffff];
      ops[k].cfg = &tx_cfg_;
    }
    engine_->run(ops, int(n), 0);
  }
}

unsigned Generator::drain_rx(uint64_t* rx, uint64_t* unmarked) {
  rte_mbuf* b[kBurst];
  uint16_t n = rte_eth_rx_burst(port_, 0, b, kBurst);
  uint64_t t;
  for (uint16_t i = 0; i < n; ++i) {
    if (marked(b[i], &t))
      ++*rx;
    else
      ++*unmarked;
  }
  if (n) rte_pktmbuf_free_bulk(b, n);
  return n;
}

bool Generator::wait_forwarding(double timeout_s, const volatile int* stop) {
  uint64_t end = rte_rdtsc() + uint64_t(timeout_s * double(hz_));
  uint64_t rx = 0, bad = 0;
  while (!*stop && rte_rdtsc() < end) {
    rte_mbuf* b[kBurst];
    if (rte_pktmbuf_alloc_bulk(pool_, b, kBurst) == 0) {
      fill(b, kBurst, rte_rdtsc());
      uint16_t s = rte_eth_tx_burst(port_, 0, b, kBurst);
      if (s < kBurst) rte_pktmbuf_free_bulk(b + s, kBurst - s);
    }
    uint64_t until = rte_rdtsc() + hz_ / 20;
    while (rte_rdtsc() < until) {
      drain_rx(&rx, &bad);
      if (rx) {
        // Let the rest of this probe come back before measuring.
        uint64_t settle = rte_rdtsc() + hz_ / 20;
        while (rte_rdtsc() < settle) drain_rx(&rx, &bad);
        return true;
      }
    }
  }
  return false;
}

void Generator::check(const rte_mbuf* m, bool hairpin, WarmupResult* r) const {
  const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint8_t* ip = d + kOffIp;
  const uint8_t* udp = d + kOffUdp;
  uint16_t udp_len = get16(udp + 4);
  const uint32_t want = frame_len_ + (hairpin ? reply_delta_ : 0);
  if (m->data_len < want || get16(d + 12) != 0x0800 || ip[0] != 0x45 ||
      udp_len != want - kOffUdp) {
    ++r->bad_addr;
    return;
  }
  bool csum_ok = fold(sum16(ip, 20)) == 0xffff;
  if (get16(udp + 6) != 0) {
    uint64_t sum = sum16(ip + 12, 8) + 17 + udp_len;
    csum_ok = csum_ok && fold(sum16(udp, udp_len, sum)) == 0xffff;
  }
  if (!csum_ok) ++r->bad_csum;
  uint32_t idx;
  if (crypto_)
    idx = get32(d + kOffRtp + 8) & 0xffffff;  // SSRC: the payload may be encrypted
  else
    std::memcpy(&idx, d + kOffFlow, 4);
  if (idx >= flows_.size()) {
    ++r->bad_addr;
    return;
  }
  const GenFlow& g = flows_[idx];
  auto ip32 = [](const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
  };
  bool ok;
  if (hairpin) {
    ok = std::memcmp(d, src_mac_.data(), 6) == 0 && std::memcmp(d + 6, dst_mac_.data(), 6) == 0 &&
         ip32(ip + 12) == g.dst_ip && get16(udp) == g.dst_port && ip32(ip + 16) == src_ip_ &&
         get16(udp + 2) == g.src_port && ip[8] == 64 - relay_hops_;
  } else {
    ok = std::memcmp(d, tmpl_.data(), 12) == 0 && ip32(ip + 12) == src_ip_ &&
         get16(udp) == g.src_port && ip32(ip + 16) == g.dst_ip && get16(udp + 2) == g.dst_port &&
         ip[8] == 64;
  }
  if (!ok) ++r->bad_addr;
}

WarmupResult Generator::warmup(bool hairpin, const volatile int* stop) {
  WarmupResult r;
  auto receive = [&]() {
    rte_mbuf* b[kBurst];
    uint16_t n = rte_eth_rx_burst(port_, 0, b, kBurst);
    uint64_t t;
    for (uint16_t i = 0; i < n; ++i) {
      if (!marked(b[i], &t)) continue;
      ++r.rx;
      check(b[i], hairpin, &r);
    }
    if (n) rte_pktmbuf_free_bulk(b, n);
  };
  size_t left = flows_.size();
  while (left && !*stop) {
    unsigned k = unsigned(std::min<size_t>(left, kBurst));
    rte_mbuf* b[kBurst];
    if (rte_pktmbuf_alloc_bulk(pool_, b, k) != 0) {
      receive();
      continue;
    }
    fill(b, k, rte_rdtsc());
    unsigned sent = 0;
    while (sent < k && !*stop) {
      sent += rte_eth_tx_burst(port_, 0, b + sent, uint16_t(k - sent));
      receive();
    }
    if (sent < k) rte_pktmbuf_free_bulk(b + sent, k - sent);
    left -= k;
  }
  uint64_t until = rte_rdtsc() + hz_ / 5;
  while (rte_rdtsc() < until) receive();
  return r;
}

BlastResult Generator::blast(double warm_s, double seconds, const volatile int* stop) {
  BlastResult r;
  rte_mbuf* pend[kBurst];
  unsigned np = 0;
  const uint64_t t0 = rte_rdtsc();
  const uint64_t win0 = t0 + uint64_t(warm_s * double(hz_));
  const uint64_t end = win0 + uint64_t(seconds * double(hz_));
  bool in_window = false;
  uint64_t rx_at = 0, tx_at = 0, t_at = 0, now = t0;
  while (!*stop) {
    now = rte_rdtsc();
    if (!in_window && now >= win0) {
      in_window = true;
      rx_at = r.rx;
      tx_at = r.tx;
      t_at = now;
    }
    if (now >= end) break;
    if (np < kBurst && rte_pktmbuf_alloc_bulk(pool_, pend + np, kBurst - np) == 0) {
      fill(pend + np, kBurst - np, now);
      np = kBurst;
    }
    uint16_t s = rte_eth_tx_burst(port_, 0, pend, uint16_t(np));
    r.tx += s;
    if (s && s < np) std::memmove(pend, pend + s, (np - s) * sizeof(pend[0]));
    np -= s;
    for (int i = 0; i < 4 && drain_rx(&r.rx, &r.unmarked) == kBurst; ++i) {
    }
  }
  if (in_window) {
    r.rx_window = r.rx - rx_at;
    r.tx_window = r.tx - tx_at;
    r.window_s = double(now - t_at) / double(hz_);
  }
  if (np) rte_pktmbuf_free_bulk(pend, np);
  // Whatever is still in flight comes back now or counts as lost.
  uint64_t until = rte_rdtsc() + hz_ / 10;
  while (rte_rdtsc() < until) drain_rx(&r.rx, &r.unmarked);
  return r;
}

LatencyResult Generator::paced(double rate_pps, double warm_s, double seconds,
                               const volatile int* stop) {
  LatencyResult r;
  std::vector<uint32_t> lat;
  size_t cap = size_t(rate_pps * (seconds + 0.2) * 1.05) + 1024;
  cap = std::min<size_t>(cap, 64u << 20);
  lat.reserve(cap);
  const double per_tsc = rate_pps / double(hz_);
  const uint64_t t0 = rte_rdtsc();
  const uint64_t rec_from = t0 + uint64_t(warm_s * double(hz_));
  const uint64_t end = rec_from + uint64_t(seconds * double(hz_));
  uint64_t attempted = 0;
  rte_mbuf* b[kBurst];
  auto receive = [&]() -> unsigned {
    uint16_t n = rte_eth_rx_burst(port_, 0, b, kBurst);
    if (!n) return 0;
    uint64_t now = rte_rdtsc();
    uint64_t t;
    for (uint16_t i = 0; i < n; ++i) {
      if (!marked(b[i], &t)) continue;
      ++r.rx;
      if (t >= rec_from && t < end && now > t && lat.size() < cap)
        lat.push_back(uint32_t(std::min<uint64_t>(now - t, UINT32_MAX)));
    }
    rte_pktmbuf_free_bulk(b, n);
    return n;
  };
  while (!*stop) {
    uint64_t now = rte_rdtsc();
    if (now >= end) break;
    uint64_t due = uint64_t(double(now - t0) * per_tsc);
    // After a stall of this lcore (it shares its core), catch up on at most
    // a quarter of the memif ring (1024) in full-speed bursts and skip the
    // rest: a longer catch-up would measure the DUT's ring depth and not
    // its latency at this rate.
    constexpr uint64_t kMaxBacklog = 256;
    if (due > attempted + kMaxBacklog) {
      r.skipped += due - attempted - kMaxBacklog;
      attempted = due - kMaxBacklog;
    }
    if (due > attempted) {
      unsigned k = unsigned(std::min<uint64_t>(due - attempted, kBurst));
      rte_mbuf* t[kBurst];
      if (rte_pktmbuf_alloc_bulk(pool_, t, k) == 0) {
        uint64_t ts = rte_rdtsc();
        fill(t, k, ts);
        uint16_t s = rte_eth_tx_burst(port_, 0, t, uint16_t(k));
        if (s < k) rte_pktmbuf_free_bulk(t + s, k - s);
        r.tx += s;
        r.tx_refused += k - s;
        attempted += k;
      }
    }
    receive();
  }
  double elapsed = double(rte_rdtsc() - t0) / double(hz_);
  uint64_t until = rte_rdtsc() + hz_ / 10;
  while (rte_rdtsc() < until) receive();
  r.achieved_pps = elapsed > 0 ? double(r.tx) / elapsed : 0;
  r.samples = lat.size();
  if (!lat.empty()) {
    auto pct = [&](double q) {
      size_t k = std::min(lat.size() - 1, size_t(q * double(lat.size())));
      std::nth_element(lat.begin(), lat.begin() + long(k), lat.end());
      return double(lat[k]) * 1e6 / double(hz_);
    };
    r.p50_us = pct(0.50);
    r.p99_us = pct(0.99);
    r.p999_us = pct(0.999);
    r.max_us = double(*std::max_element(lat.begin(), lat.end())) * 1e6 / double(hz_);
  }
  return r;
}

}  // namespace sluice::bench
