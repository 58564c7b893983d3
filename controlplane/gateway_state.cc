// The gateway's state across restarts: the journal (established calls,
// subscriptions and NAT bindings written as they change, replayed at
// start-up) and the
// resynchronisation with the dataplane's flow table.
#include <algorithm>
#include <set>

#include "controlplane/gateway.h"
#include "controlplane/gateway_util.h"
#include "controlplane/journal.h"
#include "sluice/controlplane/v1/journal.pb.h"

namespace sluice::cp {

namespace {

void save(const sip::Peer& p, cfg::JournalPeer* out) {
  out->set_transport(static_cast<uint32_t>(p.transport));
  out->set_ip(p.ip);
  out->set_port(p.port);
  out->set_listener(p.listener);
}

sip::Peer load(const cfg::JournalPeer& p) {
  sip::Peer out;
  out.transport = static_cast<sip::Transport>(std::min<uint32_t>(p.transport(), 2));
  out.ip = p.ip();
  out.port = static_cast<uint16_t>(p.port());
  out.listener = p.listener();
  return out;  // conn 0: a connection of the old process is gone
}

void save(const Leg& l, cfg::JournalLeg* out) {
  out->set_call_id(l.call_id);
  out->set_local_tag(l.local_tag);
  out->set_remote_tag(l.remote_tag);
  out->set_local_hdr(l.local_hdr);
  out->set_remote_hdr(l.remote_hdr);
  out->set_local_cseq(l.local_cseq);
  out->set_remote_cseq(l.remote_cseq);
  out->set_remote_target(l.remote_target);
  for (const std::string& r : l.route_set) out->add_route_set(r);
  save(l.peer, out->mutable_peer());
  out->set_listener(l.listener);
  out->set_contact(l.contact);
  out->set_user_agent(l.user_agent);
  out->set_uac(l.uac);
}

Leg load(const cfg::JournalLeg& j) {
  Leg l;
  l.call_id = j.call_id();
  l.local_tag = j.local_tag();
  l.remote_tag = j.remote_tag();
  l.local_hdr = j.local_hdr();
  l.remote_hdr = j.remote_hdr();
  l.local_cseq = j.local_cseq() + kCseqMargin;
  l.journaled_cseq = j.local_cseq();  // written again at its next request
  l.remote_cseq = j.remote_cseq();
  l.remote_target = j.remote_target();
  l.route_set.assign(j.route_set().begin(), j.route_set().end());
  l.peer = load(j.peer());
  l.listener = j.listener();
  l.contact = j.contact();
  l.user_agent = j.user_agent();
  l.uac = j.uac();
  return l;
}

void save(const StreamSide& s, cfg::JournalStreamSide* out) {
  out->set_peer_addr(s.peer_addr);
  out->set_peer_port(s.peer_port);
  out->set_peer_rtcp(s.peer_rtcp);
  out->set_relay_port(s.relay_port);
  out->set_profile(s.profile);
  out->set_srtp(s.srtp);
  if (s.keys.rx) out->set_rx_suite(s.keys.rx->name);
  out->set_rx_key(s.keys.rx_key);
  if (s.keys.tx) out->set_tx_suite(s.keys.tx->name);
  out->set_tx_key(s.keys.tx_key);
  out->set_tx_tag(s.keys.tx_tag);
}

StreamSide load(const cfg::JournalStreamSide& j) {
  StreamSide s;
  s.peer_addr = j.peer_addr();
  s.peer_port = static_cast<uint16_t>(j.peer_port());
  s.peer_rtcp = static_cast<uint16_t>(j.peer_rtcp());
  s.relay_port = static_cast<uint16_t>(j.relay_port());
  s.profile = j.profile();
  s.srtp = j.srtp();
  s.keys.rx = j.rx_suite().empty() ? nullptr : suite_by_name(j.rx_suite());
  s.keys.rx_key = j.rx_key();
  s.keys.tx = j.tx_suite().empty() ? nullptr : suite_by_name(j.tx_suite());
  s.keys.tx_key = j.tx_key();
  s.keys.tx_tag = j.tx_tag();
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------
// Writing

cfg::JournalRecord Gateway::call_record(const Call& c) const {
  cfg::JournalRecord r;
  cfg::JournalCall* j = r.mutable_call();
  j->set_id(c.id);
  j->set_outbound(c.outbound);
  j->set_created_unix_ms(c.created_unix_ms);
  j->set_answered_unix_ms(util::unix_ms() - (now_ms() - c.answered_ms));
  save(c.leg[0], j->mutable_outside());
  save(c.leg[1], j->mutable_inside());
  for (const Stream& st : c.streams) {
    cfg::JournalStream* s = j->add_streams();
    s->set_type(st.type);
    s->set_disabled(st.disabled);
    s->set_refused(st.refused);
    s->set_rtcp_mux(st.rtcp_mux);
    s->set_direction(st.direction);
    for (const std::string& codec : st.codecs) s->add_codecs(codec);
    save(st.side[0], s->mutable_outside());
    save(st.side[1], s->mutable_inside());
  }
  j->set_reinvites(c.reinvites);
  j->set_on_hold(c.on_hold);
  j->set_session_expires_s(c.session_expires_s);
  j->set_flows_pushed(c.flows_pushed);
  j->set_timer_refresher(c.st_imposed ? (c.st_by_relay ? 3 : 1) + static_cast<uint32_t>(c.st_refresher) : 0);
  j->set_callee_update(c.callee_update);
  if (c.st_imposed && c.st_by_relay && !c.callee_update)
    j->set_refresh_sdp(c.sdp_sent[static_cast<int>(c.st_refresher)]);
  return r;
}

cfg::JournalRecord Gateway::binding_record(const Binding& b) const {
  cfg::JournalRecord r;
  cfg::JournalBinding* j = r.mutable_binding();
  j->set_token(b.token);
  j->set_aor(b.aor);
  j->set_user(b.user);
  j->set_contact(b.contact);
  j->set_user_agent(b.user_agent);
  j->set_listener(b.listener);
  save(b.peer, j->mutable_peer());
  j->set_expires_unix_ms(util::unix_ms() + (b.expires_at - now_ms()));
  j->set_registered_unix_ms(b.registered_at);
  return r;
}

void Gateway::journal_append(const cfg::JournalRecord& r) {
  journal_->append(r);  // compacts on its own thread when the file outgrows it
  ++counters_["journal_records"];
}

void Gateway::journal_call(Call& c) {
  if (!journal_ || c.state != CallState::kConfirmed) return;
  journal_append(call_record(c));
  c.journaled = true;
  for (Leg& l : c.leg) l.journaled_cseq = l.local_cseq;
}

void Gateway::journal_binding(const Binding& b) {
  if (!journal_ || b.peer.reliable()) return;  // a connection does not outlive us
  journal_append(binding_record(b));
}

void Gateway::journal_unbind(const Binding& b) {
  if (!journal_ || b.peer.reliable()) return;
  cfg::JournalRecord r;
  r.set_binding_removed(b.token);
  journal_append(r);
}

void Gateway::journal_subscription(Subscription& s) {
  // A phone on a connection cannot be reached after a restart (RFC 5923
  // reuse is the only way to it), like its binding.
  if (!journal_ || s.leg[0].peer.reliable()) return;
  cfg::JournalRecord r;
  cfg::JournalSubscription* j = r.mutable_subscription();
  j->set_id(s.id);
  j->set_event(s.event);
  j->set_subscriber(static_cast<uint32_t>(s.subscriber));
  save(s.leg[0], j->mutable_outside());
  save(s.leg[1], j->mutable_inside());
  j->set_created_unix_ms(s.created_unix_ms);
  j->set_expires_unix_ms(util::unix_ms() + (s.expires_at - now_ms()));
  j->set_notifies(s.notifies);
  journal_append(r);
  s.journaled = true;
  for (Leg& l : s.leg) l.journaled_cseq = l.local_cseq;
}

void Gateway::journal_sub_end(const Subscription& s) {
  if (!journal_ || !s.journaled) return;
  cfg::JournalRecord r;
  r.set_subscription_ended(s.id);
  journal_append(r);
}

void Gateway::journal_end(const Call& c) {
  if (!journal_ || !c.journaled) return;
  cfg::JournalRecord r;
  r.set_call_ended(c.id);
  journal_append(r);
}

// ---------------------------------------------------------------------------
// Reading back

void Gateway::restore_call(const cfg::JournalCall& j) {
  Call c;
  c.id = j.id();
  c.state = CallState::kConfirmed;
  c.outbound = j.outbound();
  c.caller = c.outbound ? Side::kOutside : Side::kInside;
  c.created_unix_ms = j.created_unix_ms();
  c.answered_ms = now_ms() - (util::unix_ms() - j.answered_unix_ms());
  c.leg[0] = load(j.outside());
  c.leg[1] = load(j.inside());
  for (const cfg::JournalStream& js : j.streams()) {
    Stream st;
    st.type = js.type();
    st.disabled = js.disabled();
    st.refused = js.refused();
    st.rtcp_mux = js.rtcp_mux();
    st.direction = js.direction();
    st.codecs.assign(js.codecs().begin(), js.codecs().end());
    st.side[0] = load(js.outside());
    st.side[1] = load(js.inside());
    c.streams.push_back(std::move(st));
  }
  // Its relay ports are taken; a port the range no longer has (the config
  // changed) leaves the call without that stream's flows.
  for (Stream& st : c.streams)
    for (int s = 0; s < 2; ++s)
      if (st.side[s].relay_port && !ports_[s]->claim(st.side[s].relay_port)) {
        ++counters_["restore_port_conflicts"];
        st.side[s].relay_port = 0;
        st.disabled = true;
      }
  c.reinvites = j.reinvites();
  c.on_hold = j.on_hold();
  c.session_expires_s = j.session_expires_s();
  c.flows_pushed = j.flows_pushed();
  c.st_imposed = j.timer_refresher() >= 1 && j.timer_refresher() <= 4;
  c.st_by_relay = j.timer_refresher() >= 3 && j.timer_refresher() <= 4;
  if (c.st_imposed) c.st_refresher = static_cast<Side>((j.timer_refresher() - 1) % 2);
  c.callee_update = j.callee_update();
  if (c.st_imposed) c.sdp_sent[static_cast<int>(c.st_refresher)] = j.refresh_sdp();
  c.journaled = true;
  c.restored = true;
  c.inv_active = false;
  c.inv_initial = false;
  for (int s = 0; s < 2; ++s)
    dialogs_[c.leg[s].call_id + "|" + c.leg[s].local_tag] = {c.id, static_cast<Side>(s)};
  next_call_ = std::max(next_call_, c.id + 1);
  uint64_t id = c.id;
  Call& placed = calls_.emplace(id, std::move(c)).first->second;
  arm_session_timer(placed);
  ++counters_["calls_restored"];
  emit(2, id, sip::uri_of(placed.leg[1].remote_hdr), placed.leg[1].peer.str(), "restored");
}

void Gateway::restore_binding(const cfg::JournalBinding& j) {
  int64_t left = j.expires_unix_ms() - util::unix_ms();
  if (left <= 0 || bindings_.size() >= cfg_.registrations().max_bindings()) return;
  Binding b;
  b.token = j.token();
  b.aor = j.aor();
  b.user = j.user();
  b.contact = j.contact();
  b.user_agent = j.user_agent();
  b.listener = j.listener();
  b.peer = load(j.peer());
  if (b.peer.reliable()) return;
  b.expires_at = now_ms() + left;
  b.registered_at = j.registered_unix_ms();
  expiries_.emplace(b.expires_at, b.token);
  index_binding(b);
  bindings_[b.token] = std::move(b);
  ++counters_["registrations_restored"];
}

void Gateway::restore_subscription(const cfg::JournalSubscription& j) {
  int64_t left = j.expires_unix_ms() - util::unix_ms();
  if (left <= 0) return;
  uint64_t id = j.id();
  Subscription& s = subs_[id];
  s.id = id;
  s.event = j.event();
  s.subscriber = j.subscriber() ? Side::kInside : Side::kOutside;
  s.leg[0] = load(j.outside());
  s.leg[1] = load(j.inside());
  s.established = true;
  s.created_unix_ms = j.created_unix_ms();
  s.notifies = j.notifies();
  s.journaled = true;
  for (int i = 0; i < 2; ++i)
    sub_dialogs_[s.leg[i].call_id + "|" + s.leg[i].local_tag] = {id, static_cast<Side>(i)};
  next_sub_ = std::max(next_sub_, id + 1);
  arm_sub_timer_ms(s, left);
  ++counters_["subscriptions_restored"];
}

bool Gateway::open_journal(Journal* journal, const std::string& dir, std::string* err) {
  std::map<uint64_t, cfg::JournalCall> calls;
  std::unordered_map<std::string, cfg::JournalBinding> binds;
  std::map<uint64_t, cfg::JournalSubscription> subs;
  bool ok = journal->open(
      dir,
      [&](const cfg::JournalRecord& r) {
        switch (r.record_case()) {
          case cfg::JournalRecord::kCall: calls[r.call().id()] = r.call(); break;
          case cfg::JournalRecord::kCallEnded: calls.erase(r.call_ended()); break;
          case cfg::JournalRecord::kBinding: binds[r.binding().token()] = r.binding(); break;
          case cfg::JournalRecord::kBindingRemoved: binds.erase(r.binding_removed()); break;
          case cfg::JournalRecord::kSubscription: subs[r.subscription().id()] = r.subscription(); break;
          case cfg::JournalRecord::kSubscriptionEnded: subs.erase(r.subscription_ended()); break;
          default: break;
        }
      },
      err);
  if (!ok) return false;
  for (const auto& [id, jc] : calls) restore_call(jc);
  for (const auto& [token, jb] : binds) restore_binding(jb);
  for (const auto& [id, js] : subs) restore_subscription(js);
  counters_["journal_replayed"] = journal->replayed();
  counters_["journal_torn_bytes"] = journal->torn();
  journal_ = journal;
  // Start from just the live state (before any request is served).
  if (!journal->compact(true)) fprintf(stderr, "sluice-controlplane: journal: %s\n", journal->last_error().c_str());
  return true;
}

// ---------------------------------------------------------------------------
// Resynchronisation with the dataplane

bool Gateway::ours(const FlowKey& k) const {
  uint32_t lo = cfg_.media().port_min(), hi = cfg_.media().port_max() + 1;
  for (Side s : {Side::kOutside, Side::kInside})
    if (k.first == media_side(s).address() && k.second >= lo && k.second <= hi) return true;
  return false;
}

void Gateway::resync(const std::vector<PresentFlow>& present) {
  std::map<FlowKey, const PresentFlow*> have;
  for (const PresentFlow& p : present) have[p.key] = &p;
  std::set<FlowKey> wanted;
  std::vector<uint64_t> timed_out;
  uint64_t adopted = 0, pushed = 0;
  for (auto& [id, c] : calls_) {
    for (const FlowKey& k : flow_keys(c)) wanted.insert(k);
    if (!c.flows_pushed && c.state != CallState::kConfirmed) continue;
    bool missing = false, dead = false;
    for (const FlowRule& r : flow_rules(c)) {
      auto h = have.find({r.local_addr, r.local_port});
      if (h == have.end() || h->second->cookie != id) {
        missing = true;
        continue;
      }
      ++adopted;
      if (h->second->state == 3 /* FLOW_STATE_TIMED_OUT */) dead = true;
    }
    if (missing) {
      c.flows_in_dataplane = false;  // the batch's fate decides again
      for (Stream& st : c.streams) st.in_dataplane = false;
      push_flows(c);
      ++pushed;
    } else {
      c.flows_in_dataplane = true;
      for (Stream& st : c.streams) st.in_dataplane = st.batched();
    }
    if (dead) timed_out.push_back(id);
  }
  std::vector<FlowKey> stale;
  for (const PresentFlow& p : present)
    if (ours(p.key) && !wanted.count(p.key)) stale.push_back(p.key);
  if (!stale.empty()) flows_->remove(stale);
  counters_["resyncs"] += 1;
  counters_["resync_flows_adopted"] += adopted;
  counters_["resync_calls_pushed"] += pushed;
  counters_["resync_flows_removed"] += stale.size();
  fprintf(stderr,
          "sluice-controlplane: resynchronised with the dataplane: %zu flows there, %llu adopted, "
          "%llu calls pushed, %zu stale flows removed, %zu calls timed out meanwhile\n",
          present.size(), static_cast<unsigned long long>(adopted),
          static_cast<unsigned long long>(pushed), stale.size(), timed_out.size());
  for (uint64_t id : timed_out) on_media_timeout(id, "resync");
}

}  // namespace sluice::cp
