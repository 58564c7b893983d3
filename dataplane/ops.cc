// Flow operations on the control lcore: validation of requests from the
// gRPC link, table writes, listings and statistics.
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <charconv>
#include <set>

#include "absl/strings/str_cat.h"
#include "dataplane/runtime.h"
#include "sluice_version.h"

namespace sluice {

namespace {

grpc::Status invalid(const std::string& msg) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, msg);
}

// Address text -> host-order IPv4; empty text is 0 (unknown) when allowed.
bool parse_addr(const std::string& s, bool allow_empty, uint32_t* out) {
  if (s.empty()) {
    *out = 0;
    return allow_empty;
  }
  auto ip = net::parse_ipv4(s);
  if (!ip) return false;
  *out = *ip;
  return true;
}

pb::Endpoint endpoint(uint32_t ip, uint16_t port) {
  pb::Endpoint e;
  e.set_address(net::format_ipv4(ip));
  e.set_port(port);
  return e;
}

struct ParsedSpec {
  uint32_t ip;
  uint16_t port;
  FlowConfig cfg;
  uint64_t cookie;
  uint32_t timeout_ms;
  std::shared_ptr<const srtp::CryptoConfig> crypto;  // null: passthrough
};

pb::SrtpSuite to_pb(srtp::Suite s) { return pb::SrtpSuite(int(s)); }

void add_drops(const std::atomic<uint64_t>* counts, google::protobuf::RepeatedPtrField<pb::DropCount>* out) {
  for (int d = 0; d < kDropCount; ++d) {
    uint64_t v = counts[d].load(std::memory_order_relaxed);
    if (!v) continue;
    auto* dc = out->Add();
    dc->set_reason(kDropNames[d]);
    dc->set_packets(v);
  }
}

}  // namespace

grpc::Status Runtime::parse_crypto(const pb::FlowSpec& s, const std::string& f, FlowKind kind,
                                   const FlowSlot* existing,
                                   std::shared_ptr<const srtp::CryptoConfig>* out) {
  out->reset();
  if (!s.has_crypto() || (!s.crypto().has_decrypt() && !s.crypto().has_encrypt()))
    return grpc::Status::OK;
  const srtp::CryptoConfig* old = nullptr;
  if (existing) {
    auto it = crypto_.find(flows_->slot_index(existing));
    if (it != crypto_.end() && existing->config().crypto) old = it->second.cfg.get();
  }
  bool need_rtp = kind != FlowKind::kRtcp, need_rtcp = kind != FlowKind::kRtp;
  // Builds (or, when the same key is already installed, reuses) a KeySet. The
  // error messages name the field and sizes, never key bytes.
  auto build = [&](const pb::SrtpKey& k, const std::string& field,
                   std::shared_ptr<const srtp::KeySet>* ks) -> grpc::Status {
    int sv = int(k.suite());
    if (sv <= 0 || sv >= srtp::kSuiteCount)
      return invalid(absl::StrCat(field, ".suite: required (one of the SRTP_SUITE_ values)"));
    srtp::Suite suite = srtp::Suite(sv);
    const srtp::SuiteInfo& in = srtp::info(suite);
    if (k.master_key().size() != in.key_len)
      return invalid(absl::StrCat(field, ".master_key: ", in.sdes_name, " needs ", in.key_len,
                                  " bytes, got ", k.master_key().size()));
    if (k.master_salt().size() != in.salt_len)
      return invalid(absl::StrCat(field, ".master_salt: ", in.sdes_name, " needs ", in.salt_len,
                                  " bytes, got ", k.master_salt().size()));
    const auto* key = reinterpret_cast<const uint8_t*>(k.master_key().data());
    const auto* salt = reinterpret_cast<const uint8_t*>(k.master_salt().data());
    uint8_t digest[32];
    srtp::key_digest(suite, key, in.key_len, salt, in.salt_len, digest);
    if (old) {
      for (const auto* sp : {old->rx.get(), old->rx_prev.get(), old->tx.get()}) {
        if (sp && std::memcmp(sp->digest(), digest, 32) == 0 &&
            (!need_rtp || sp->has_rtp()) && (!need_rtcp || sp->has_rtcp())) {
          *ks = sp == old->rx.get()        ? old->rx
                : sp == old->rx_prev.get() ? old->rx_prev
                                           : old->tx;
          return grpc::Status::OK;
        }
      }
    }
    *ks = srtp::KeySet::create(suite, key, in.key_len, salt, in.salt_len, need_rtp, need_rtcp,
                               next_key_id_++);
    if (!*ks) return invalid(absl::StrCat(field, ": cannot build the key"));
    return grpc::Status::OK;
  };
  auto c = std::make_shared<srtp::CryptoConfig>();
  if (s.crypto().has_decrypt()) {
    if (grpc::Status st = build(s.crypto().decrypt(), f + ".crypto.decrypt", &c->rx); !st.ok())
      return st;
  }
  if (s.crypto().has_encrypt()) {
    if (grpc::Status st = build(s.crypto().encrypt(), f + ".crypto.encrypt", &c->tx); !st.ok())
      return st;
  }
  if (old && old->rx && c->rx) {
    // A new decrypt key keeps the one it replaces for packets in flight.
    c->rx_prev = old->rx == c->rx ? old->rx_prev : old->rx;
  }
  if (old && old->rx == c->rx && old->tx == c->tx && old->rx_prev == c->rx_prev) {
    *out = crypto_.at(flows_->slot_index(existing)).cfg;  // unchanged
    return grpc::Status::OK;
  }
  *out = std::move(c);
  return grpc::Status::OK;
}

grpc::Status Runtime::upsert(const pb::UpsertFlowsRequest& req, pb::UpsertFlowsResponse* resp) {
  std::vector<ParsedSpec> parsed;
  parsed.reserve(size_t(req.flows_size()));
  std::set<uint64_t> keys;
  uint32_t new_keys = 0;
  for (int i = 0; i < req.flows_size(); ++i) {
    const pb::FlowSpec& s = req.flows(i);
    std::string f = absl::StrCat("flows[", i, "]");
    ParsedSpec p{};
    if (!parse_addr(s.key().local_address(), false, &p.ip))
      return invalid(absl::StrCat(f, ".key.local_address: '", s.key().local_address(),
                                  "' is not an IPv4 address"));
    int aidx = flows_->address_index(p.ip);
    if (aidx < 0)
      return invalid(absl::StrCat(f, ".key.local_address: ", s.key().local_address(),
                                  " is not a relay address of this dataplane"));
    if (s.key().local_port() < view_.media_min || s.key().local_port() > view_.media_max)
      return invalid(absl::StrCat(f, ".key.local_port: ", s.key().local_port(),
                                  " is outside the media port range ", view_.media_min, "-",
                                  view_.media_max));
    p.port = uint16_t(s.key().local_port());
    if (!keys.insert(uint64_t(p.ip) << 16 | p.port).second)
      return invalid(absl::StrCat(f, ".key: duplicate key in this batch"));
    FlowConfig& c = p.cfg;
    int eg = port_index(s.egress_port());
    if (eg < 0) return invalid(absl::StrCat(f, ".egress_port: no port named '", s.egress_port(), "'"));
    c.egress_port = uint8_t(eg);
    if (!parse_addr(s.egress_source().address(), false, &c.src_ip) ||
        flows_->address_index(c.src_ip) < 0)
      return invalid(absl::StrCat(f, ".egress_source.address: '", s.egress_source().address(),
                                  "' is not a relay address of this dataplane"));
    if (s.egress_source().port() == 0 || s.egress_source().port() > 65535)
      return invalid(absl::StrCat(f, ".egress_source.port: must be 1..65535"));
    c.src_port = uint16_t(s.egress_source().port());
    if (!parse_addr(s.destination().address(), true, &c.dst_ip))
      return invalid(absl::StrCat(f, ".destination.address: '", s.destination().address(),
                                  "' is not an IPv4 address"));
    if (s.destination().port() > 65535) return invalid(f + ".destination.port: must be 0..65535");
    c.dst_port = uint16_t(s.destination().port());
    if (!parse_addr(s.expected_peer().address(), true, &c.expect_ip))
      return invalid(absl::StrCat(f, ".expected_peer.address: '", s.expected_peer().address(),
                                  "' is not an IPv4 address"));
    if (s.expected_peer().port() > 65535) return invalid(f + ".expected_peer.port: must be 0..65535");
    c.expect_port = uint16_t(s.expected_peer().port());
    switch (s.latch()) {
      case pb::LATCH_POLICY_UNSPECIFIED:
      case pb::LATCH_POLICY_FIRST:
        c.latch = Latch::kFirst;
        c.max_senders = 1;
        break;
      case pb::LATCH_POLICY_ALLOW_N:
        c.latch = Latch::kAllowN;
        c.max_senders = uint8_t(s.max_senders() ? s.max_senders() : 4);
        if (s.max_senders() > kMaxSenders)
          return invalid(absl::StrCat(f, ".max_senders: at most ", kMaxSenders));
        break;
      case pb::LATCH_POLICY_STRICT:
        c.latch = Latch::kStrict;
        c.max_senders = 1;
        if (!c.expect_ip)
          return invalid(f + ".expected_peer.address: required with LATCH_POLICY_STRICT");
        break;
      default:
        return invalid(absl::StrCat(f, ".latch: unknown policy ", int(s.latch())));
    }
    if (s.has_dscp() && s.dscp() > 63) return invalid(f + ".dscp: must be 0..63");
    c.dscp = uint8_t(s.has_dscp() ? s.dscp() : 46);
    switch (s.ttl_policy()) {
      case pb::TTL_POLICY_UNSPECIFIED:
      case pb::TTL_POLICY_DECREMENT:
        c.ttl_mode = TtlMode::kDecrement;
        break;
      case pb::TTL_POLICY_RESET:
        c.ttl_mode = TtlMode::kReset;
        if (s.ttl_value() > 255) return invalid(f + ".ttl_value: must be 1..255");
        c.ttl_value = uint8_t(s.ttl_value() ? s.ttl_value() : 64);
        break;
      default:
        return invalid(absl::StrCat(f, ".ttl_policy: unknown policy ", int(s.ttl_policy())));
    }
    switch (s.kind()) {
      case pb::FLOW_KIND_UNSPECIFIED:
      case pb::FLOW_KIND_RTP: c.kind = FlowKind::kRtp; break;
      case pb::FLOW_KIND_RTCP: c.kind = FlowKind::kRtcp; break;
      case pb::FLOW_KIND_RTP_RTCP_MUX: c.kind = FlowKind::kMux; break;
      default: return invalid(absl::StrCat(f, ".kind: unknown kind ", int(s.kind())));
    }
    if (s.policer().rate_pps() > 10000000) return invalid(f + ".policer.rate_pps: at most 10000000");
    c.police_rate = s.policer().rate_pps();
    c.police_burst = s.policer().burst() ? s.policer().burst()
                                         : std::max<uint32_t>(8, c.police_rate / 10);
    const auto& to = s.inactivity_timeout();
    if (to.seconds() < 0 || to.nanos() < 0 || to.seconds() > 86400)
      return invalid(f + ".inactivity_timeout: must be 0..86400 s");
    p.timeout_ms = uint32_t(to.seconds() * 1000 + to.nanos() / 1000000);
    if (p.timeout_ms == 0) p.timeout_ms = 60000;
    // The owning worker: the one polling the ingress port when it has one
    // RX queue (no hand-off at all), else spread by local port.
    int in_port = -1;
    for (size_t k = 0; k < ports_.size() && in_port < 0; ++k)
      for (uint32_t a : ports_[k]->addresses)
        if (a == p.ip) in_port = int(k);
    c.worker = uint8_t(p.port % workers_.size());
    if (cfg_.ports(in_port).rx_queues() == 1) {
      for (auto& w : workers_)
        for (auto& q : w->rxq)
          if (q.index == in_port) c.worker = w->id;
    }
    p.cookie = s.cookie();
    const FlowSlot* existing = flows_->lookup_index(aidx, p.port);
    if (grpc::Status st = parse_crypto(s, f, c.kind, existing, &p.crypto); !st.ok()) return st;
    c.crypto = p.crypto ? uint8_t(1 | (p.crypto->rx ? 2 : 0)) : 0;
    if (!existing) ++new_keys;
    parsed.push_back(p);
  }
  if (new_keys > flows_->capacity() - flows_->size()) {
    flows_->reclaim(true);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("the batch adds ", new_keys, " flows; ",
                                     flows_->capacity() - flows_->size(),
                                     " free of media.max_flows=", flows_->capacity()));
  }
  for (const ParsedSpec& p : parsed) {
    // The SRTP config is published to the flow's crypto state before the
    // flow config that enables it; a replaced one is freed after a grace
    // period. A new flow's state starts from zero.
    const FlowSlot* existing = flows_->lookup(p.ip, p.port);
    auto it = existing ? crypto_.find(flows_->slot_index(existing)) : crypto_.end();
    const srtp::CryptoConfig* old = it != crypto_.end() ? it->second.cfg.get() : nullptr;
    bool crypto_changed = (old == nullptr) != (p.crypto == nullptr) ||
                          (old && p.crypto &&
                           (old->rx != p.crypto->rx || old->tx != p.crypto->tx));
    auto publish = [&](uint32_t idx) {
      if (!existing && crypto_.count(idx)) {
        retire(std::move(crypto_[idx].cfg));
        crypto_.erase(idx);
      }
      if (!p.crypto) return;
      srtp::CryptoState& cs = crypto_table_->ensure(idx);
      // No worker reads the state of a flow whose live config has no crypto
      // (upsert waited out the grace period of the last flip before this).
      if (!existing || !existing->config().crypto) cs.reset();
      if (!crypto_changed && existing) return;
      // Release: the config and the keys it points at are complete first.
      cs.config.store(p.crypto.get(), std::memory_order_release);
      CryptoEntry& e = crypto_[idx];
      retire(std::move(e.cfg));
      e.cfg = p.crypto;
    };
    FlowTable::Result res = flows_->upsert(p.ip, p.port, p.cfg, p.cookie, req.generation(),
                                           p.timeout_ms, publish, crypto_changed);
    if (!p.crypto && existing && res == FlowTable::Result::kUpdated) {
      // Crypto turned off: retire the config only now, after the flip, so
      // its grace period covers every reader of the old flow config.
      auto e = crypto_.find(flows_->slot_index(existing));
      if (e != crypto_.end()) {
        retire(std::move(e->second.cfg));
        crypto_.erase(e);
      }
    }
    switch (res) {
      case FlowTable::Result::kCreated: resp->set_created(resp->created() + 1); break;
      case FlowTable::Result::kUpdated: resp->set_updated(resp->updated() + 1); break;
      case FlowTable::Result::kUnchanged: resp->set_unchanged(resp->unchanged() + 1); break;
      case FlowTable::Result::kStale: resp->set_stale(resp->stale() + 1); break;
      case FlowTable::Result::kFull:
      case FlowTable::Result::kBadAddress:
        return grpc::Status(grpc::StatusCode::INTERNAL, "flow table rejected a validated flow");
    }
  }
  // Resolve the configured destinations now, not on the first packet.
  uint64_t now = rte_rdtsc();
  for (const ParsedSpec& p : parsed) {
    if (!p.cfg.dst_ip || own_port(view_, p.cfg.dst_ip) >= 0) continue;  // none, or NAT loopback
    uint8_t port;
    uint32_t nh = next_hop(view_, p.cfg.egress_port, p.cfg.dst_ip, &port);
    net::Mac mac;
    if (nh && !neighbors_->lookup(nh, &mac)) resolve(nh, port, now);
  }
  generation_ = std::max(generation_, req.generation());
  resp->set_generation(generation_);
  return grpc::Status::OK;
}

grpc::Status Runtime::remove(const pb::DeleteFlowsRequest& req, pb::DeleteFlowsResponse* resp) {
  for (int i = 0; i < req.keys_size(); ++i) {
    const auto& k = req.keys(i);
    uint32_t ip;
    if (!parse_addr(k.local_address(), false, &ip))
      return invalid(absl::StrCat("keys[", i, "].local_address: '", k.local_address(),
                                  "' is not an IPv4 address"));
    if (k.local_port() == 0 || k.local_port() > 65535)
      return invalid(absl::StrCat("keys[", i, "].local_port: must be 1..65535"));
  }
  for (const auto& k : req.keys()) {
    uint32_t ip = *net::parse_ipv4(k.local_address());
    FlowSlot* s = flows_->lookup(ip, uint16_t(k.local_port()));
    if (!s) {
      resp->set_not_found(resp->not_found() + 1);
    } else if (req.generation() && s->meta.generation > req.generation()) {
      resp->set_stale(resp->stale() + 1);
    } else {
      uint32_t idx = flows_->slot_index(s);
      flows_->remove(ip, uint16_t(k.local_port()));
      if (auto it = crypto_.find(idx); it != crypto_.end()) {
        retire(std::move(it->second.cfg));
        crypto_.erase(it);
      }
      resp->set_deleted(resp->deleted() + 1);
    }
  }
  generation_ = std::max(generation_, req.generation());
  resp->set_generation(generation_);
  return grpc::Status::OK;
}

void Runtime::fill_flow(FlowSlot& s, pb::Flow* f, uint64_t now) {
  const FlowConfig& c = s.config();
  pb::FlowSpec* sp = f->mutable_spec();
  sp->mutable_key()->set_local_address(net::format_ipv4(s.meta.local_ip));
  sp->mutable_key()->set_local_port(s.meta.local_port);
  sp->set_kind(c.kind == FlowKind::kRtp    ? pb::FLOW_KIND_RTP
               : c.kind == FlowKind::kRtcp ? pb::FLOW_KIND_RTCP
                                           : pb::FLOW_KIND_RTP_RTCP_MUX);
  *sp->mutable_expected_peer() = endpoint(c.expect_ip, c.expect_port);
  sp->set_latch(c.latch == Latch::kFirst    ? pb::LATCH_POLICY_FIRST
                : c.latch == Latch::kAllowN ? pb::LATCH_POLICY_ALLOW_N
                                            : pb::LATCH_POLICY_STRICT);
  sp->set_max_senders(c.max_senders);
  sp->set_egress_port(ports_[c.egress_port]->name);
  *sp->mutable_egress_source() = endpoint(c.src_ip, c.src_port);
  *sp->mutable_destination() = endpoint(c.dst_ip, c.dst_port);
  sp->set_dscp(c.dscp);
  sp->set_ttl_policy(c.ttl_mode == TtlMode::kReset ? pb::TTL_POLICY_RESET : pb::TTL_POLICY_DECREMENT);
  sp->set_ttl_value(c.ttl_value);
  if (c.police_rate) {
    sp->mutable_policer()->set_rate_pps(c.police_rate);
    sp->mutable_policer()->set_burst(c.police_burst);
  }
  sp->mutable_inactivity_timeout()->set_seconds(s.meta.timeout_ms / 1000);
  sp->mutable_inactivity_timeout()->set_nanos(int32_t(s.meta.timeout_ms % 1000) * 1000000);
  sp->set_cookie(s.meta.cookie);
  f->set_generation(s.meta.generation);
  const FlowState& st = s.st;
  uint64_t l = st.latched.load(std::memory_order_relaxed);
  f->set_state(!(l & kLatchedValid) ? pb::FLOW_STATE_WAITING
               : s.meta.timed_out   ? pb::FLOW_STATE_TIMED_OUT
                                    : pb::FLOW_STATE_ACTIVE);
  if (l & kLatchedValid) *f->mutable_latched_peer() = endpoint(uint32_t(l >> 16), uint16_t(l));
  uint8_t n = st.nsenders.load(std::memory_order_acquire);
  for (uint8_t i = 0; i < n && i < kMaxSenders; ++i)
    *f->add_senders() = endpoint(st.sender_ip[i].load(std::memory_order_relaxed),
                                 st.sender_port[i].load(std::memory_order_relaxed));
  uint32_t dip = c.dst_ip;
  uint16_t dport = c.dst_port;
  if (FlowSlot* rev = flows_->lookup(c.src_ip, c.src_port)) {
    uint64_t rl = rev->st.latched.load(std::memory_order_relaxed);
    if (rl & kLatchedValid) {
      dip = uint32_t(rl >> 16);
      dport = uint16_t(rl);
    }
  }
  *f->mutable_current_destination() = endpoint(dip, dport);
  f->set_packets(st.packets.load(std::memory_order_relaxed));
  f->set_bytes(st.bytes.load(std::memory_order_relaxed));
  for (int d = 0; d < kDropCount; ++d) {
    int fi = flow_drop_index(Drop(d));
    if (fi < 0) continue;
    uint32_t v = st.drops[fi].load(std::memory_order_relaxed);
    if (!v) continue;
    auto* dc = f->add_drops();
    dc->set_reason(kDropNames[d]);
    dc->set_packets(v);
  }
  f->set_last_ssrc(st.last_ssrc.load(std::memory_order_relaxed));
  f->set_last_payload_type(st.last_pt.load(std::memory_order_relaxed));
  f->set_sequence_gaps(st.seq_gaps.load(std::memory_order_relaxed));
  uint64_t seen = st.last_seen_tsc.load(std::memory_order_relaxed);
  if (seen && now > seen) {
    uint64_t ns = uint64_t(double(now - seen) * 1e9 / double(hz_));
    f->mutable_idle()->set_seconds(int64_t(ns / 1000000000));
    f->mutable_idle()->set_nanos(int32_t(ns % 1000000000));
  }
  f->set_worker(c.worker);
  if (c.crypto) {
    auto it = crypto_.find(flows_->slot_index(&s));
    if (it != crypto_.end()) {
      const srtp::CryptoConfig& cc = *it->second.cfg;
      const srtp::CryptoState& cs = *crypto_table_->get(flows_->slot_index(&s));
      pb::CryptoStatus* cr = f->mutable_crypto();
      cr->set_mode(cc.rx && cc.tx ? pb::CRYPTO_MODE_REKEY
                   : cc.rx        ? pb::CRYPTO_MODE_DECRYPT
                                  : pb::CRYPTO_MODE_ENCRYPT);
      uint64_t kb = 0;
      if (cc.rx) {
        cr->set_decrypt_suite(to_pb(cc.rx->suite()));
        kb += cc.rx->memory_bytes();
      }
      if (cc.tx) {
        cr->set_encrypt_suite(to_pb(cc.tx->suite()));
        kb += cc.tx->memory_bytes();
      }
      if (cc.rx_prev) kb += cc.rx_prev->memory_bytes();
      cr->set_key_bytes(kb);
      cr->set_decrypted(cs.decrypted.load(std::memory_order_relaxed));
      cr->set_encrypted(cs.encrypted.load(std::memory_order_relaxed));
      cr->set_auth_failed(cs.auth_failed.load(std::memory_order_relaxed));
      cr->set_replayed(cs.replayed.load(std::memory_order_relaxed));
      cr->set_malformed(cs.malformed.load(std::memory_order_relaxed));
      cr->set_previous_key_used(cs.prev_key_used.load(std::memory_order_relaxed));
      cr->set_previous_key_live(cc.rx_prev && cs.prev_live.load(std::memory_order_relaxed));
      cr->set_owner_changes(cs.owner_changes.load(std::memory_order_relaxed));
      // The newest stream's rollover counter in each direction.
      // The highest rollover counter among the tracked SSRCs (only the
      // atomic index is read: the rest belongs to the worker).
      auto newest = [](const auto& streams) {
        uint64_t best = 0;
        for (const auto& st : streams)
          best = std::max(best, st.highest.load(std::memory_order_relaxed));
        return uint32_t(best >> 16);
      };
      cr->set_decrypt_roc(newest(cs.rx_rtp));
      cr->set_encrypt_roc(newest(cs.tx_rtp));
    }
  } else {
    f->mutable_crypto()->set_mode(pb::CRYPTO_MODE_PASSTHROUGH);
  }
}

grpc::Status Runtime::list(const pb::ListFlowsRequest& req, pb::ListFlowsResponse* resp) {
  uint32_t page = req.page_size() ? req.page_size() : 1000;
  if (page > 10000) return invalid("page_size: at most 10000");
  int a = 0;
  uint32_t port = 0;
  if (!req.page_token().empty()) {
    const std::string& t = req.page_token();
    size_t colon = t.find(':');
    unsigned aa = 0, pp = 0;
    if (colon == std::string::npos ||
        std::from_chars(t.data(), t.data() + colon, aa).ec != std::errc() ||
        std::from_chars(t.data() + colon + 1, t.data() + t.size(), pp).ec != std::errc() ||
        aa >= unsigned(flows_->address_count()) || pp > 65536)
      return invalid("page_token: not a token from ListFlows");
    a = int(aa);
    port = pp;
  }
  uint64_t now = rte_rdtsc();
  uint32_t n = 0;
  auto next = flows_->visit(a, port, [&](FlowSlot& s) {
    if (req.cookie() && s.meta.cookie != req.cookie()) return true;
    fill_flow(s, resp->add_flows(), now);
    return ++n < page;
  });
  if (next.first >= 0) {
    // Only hand out a token when something is left after this page.
    bool more = false;
    flows_->visit(next.first, next.second, [&](FlowSlot& s) {
      more = !req.cookie() || s.meta.cookie == req.cookie();
      return !more;
    });
    if (more) resp->set_next_page_token(absl::StrCat(next.first, ":", next.second));
  }
  resp->set_total(flows_->size());
  return grpc::Status::OK;
}

grpc::Status Runtime::get(const pb::GetFlowRequest& req, pb::Flow* resp) {
  uint32_t ip;
  if (!parse_addr(req.key().local_address(), false, &ip))
    return invalid(absl::StrCat("key.local_address: '", req.key().local_address(),
                                "' is not an IPv4 address"));
  if (req.key().local_port() == 0 || req.key().local_port() > 65535)
    return invalid("key.local_port: must be 1..65535");
  FlowSlot* s = flows_->lookup(ip, uint16_t(req.key().local_port()));
  if (!s)
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no flow at ", req.key().local_address(), ":",
                                     req.key().local_port()));
  fill_flow(*s, resp, rte_rdtsc());
  return grpc::Status::OK;
}

void Runtime::stats(pb::Stats* st) {
  uint64_t now = rte_rdtsc();
  auto ts = std::chrono::system_clock::now().time_since_epoch();
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(ts).count();
  st->mutable_time()->set_seconds(ns / 1000000000);
  st->mutable_time()->set_nanos(int32_t(ns % 1000000000));
  st->set_generation(generation_);
  st->set_flows(flows_->size());
  st->set_flow_capacity(flows_->capacity());
  st->set_flow_table_bytes(flows_->memory_bytes());
  st->set_crypto_flows(crypto_.size());
  {
    uint64_t b = crypto_table_->memory_bytes();
    for (const auto& [idx, e] : crypto_) {
      (void)idx;
      for (const auto* k : {e.cfg->rx.get(), e.cfg->rx_prev.get(), e.cfg->tx.get()})
        if (k) b += k->memory_bytes();
    }
    st->set_crypto_state_bytes(b);
  }
  st->set_version(SLUICE_VERSION);
  uint64_t up = uint64_t(double(now - start_tsc_) * 1e9 / double(hz_));
  st->mutable_uptime()->set_seconds(int64_t(up / 1000000000));
  st->mutable_uptime()->set_nanos(int32_t(up % 1000000000));
  for (size_t i = 0; i < ports_.size(); ++i) {
    PortRuntime& p = *ports_[i];
    auto* ps = st->add_ports();
    ps->set_name(p.name);
    ps->set_role(p.role);
    ps->set_mac(net::format_mac(view_.ports[i].mac));
    ps->set_address(net::format_ipv4(view_.ports[i].ip));
    rte_eth_stats es;
    if (rte_eth_stats_get(p.port_id, &es) == 0) {
      ps->set_rx_packets(es.ipackets);
      ps->set_tx_packets(es.opackets);
      ps->set_rx_missed(es.imissed);
      ps->set_rx_errors(es.ierrors);
      ps->set_tx_errors(es.oerrors);
    }
    ps->set_punted(p.punted.load(std::memory_order_relaxed));
    ps->set_injected(p.injected.load(std::memory_order_relaxed));
  }
  std::atomic<uint64_t> total[kDropCount] = {};
  for (auto& w : workers_) {
    auto* ws = st->add_workers();
    ws->set_worker(w->id);
    ws->set_lcore(w->lcore);
    ws->set_rx_packets(w->c.rx.load(std::memory_order_relaxed));
    ws->set_tx_packets(w->c.tx.load(std::memory_order_relaxed));
    ws->set_relayed(w->c.relayed.load(std::memory_order_relaxed));
    ws->set_handed_off(w->c.handed_off.load(std::memory_order_relaxed));
    ws->set_hairpinned(w->c.hairpinned.load(std::memory_order_relaxed));
    ws->set_idle_sleeps(w->c.idle_sleeps.load(std::memory_order_relaxed));
    add_drops(w->c.drops, ws->mutable_drops());
    for (int d = 0; d < kDropCount; ++d)
      total[d].fetch_add(w->c.drops[d].load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  add_drops(total, st->mutable_drops());
  neighbors_->visit([&](uint32_t ip, const NeighborTable::Entry& e, uint64_t updated) {
    auto* n = st->add_neighbors();
    n->set_address(net::format_ipv4(ip));
    n->set_mac(net::format_mac(e.mac));
    n->set_port(e.port < ports_.size() ? ports_[e.port]->name : "");
    static const char* names[] = {"invalid", "incomplete", "reachable", "stale", "static"};
    n->set_state(names[e.state <= 4 ? e.state : 0]);
    uint64_t age = now > updated ? uint64_t(double(now - updated) * 1e9 / double(hz_)) : 0;
    n->mutable_age()->set_seconds(int64_t(age / 1000000000));
    n->mutable_age()->set_nanos(int32_t(age % 1000000000));
  });
}

}  // namespace sluice
