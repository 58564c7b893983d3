#include "controlplane/gateway.h"
#include "controlplane/gateway_util.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <utility>

#include "controlplane/journal.h"
#include "controlplane/net/srv.h"
#include "controlplane/net/transport.h"

namespace sluice::cp {

using sip::Message;
using sip::Peer;
using namespace util;  // NOLINT: this file's own helpers


const char* side_name(Side s) { return s == Side::kOutside ? "outside" : "inside"; }

Gateway::Gateway(const cfg::ControlplaneConfig& config, sip::Timers* timers,
                 net::SipTransport* transport, FlowSink* flows)
    : cfg_(config),
      timers_(timers),
      transport_(transport),
      flows_(flows),
      tx_(timers, transport, this,
          sip::Timing{config.timers().t1_ms(), config.timers().t2_ms(), config.timers().t4_ms()}),
      admission_(Admission::Limits{config.overload().max_calls(), config.overload().max_call_rate(),
                                   config.overload().queue_delay_ms()}) {
  for (int s = 0; s < 2; ++s)
    ports_[s] = std::make_unique<PortPool>(static_cast<uint16_t>(cfg_.media().port_min()),
                                           static_cast<uint16_t>(cfg_.media().port_max()));
  for (const cfg::Upstream& u : cfg_.upstreams()) {
    UpstreamState st;
    st.spec = u;
    sip::parse_ip(u.host(), &st.peer.ip);
    st.peer.port = static_cast<uint16_t>(u.port());
    st.peer.transport = u.transport() == cfg::TCP   ? sip::Transport::kTcp
                        : u.transport() == cfg::TLS ? sip::Transport::kTls
                                                    : sip::Transport::kUdp;
    st.peer.listener = listener_for(Side::kInside, st.peer.transport);
    upstreams_.push_back(st);
  }
  expiry_timer_ = timers_->after(1000, [this] { expire_bindings(); });
  if (!cfg_.monitor().disabled()) probe_timer_ = timers_->after(100, [this] { probe_upstreams(); });
}

Gateway::~Gateway() {
  timers_->cancel(expiry_timer_);
  timers_->cancel(probe_timer_);
  for (auto& [id, c] : calls_) {
    timers_->cancel(c.invite_timer);
    timers_->cancel(c.failover_timer);
    timers_->cancel(c.session_timer);
    timers_->cancel(c.refresh_timer);
    timers_->cancel(c.off_timer);
  }
  for (auto& [id, sub] : subs_) timers_->cancel(sub.timer);
  timers_->cancel(overload_timer_);
}

void Gateway::emit(int type, uint64_t call_id, const std::string& aor, const std::string& address,
                   const std::string& detail) {
  if (on_event) on_event(GatewayEvent{type, call_id, aor, address, detail});
}

Side Gateway::side_of(const Peer& p) const {
  if (p.listener >= 0 && p.listener < transport_->listeners() &&
      transport_->listener(p.listener).side == "inside")
    return Side::kInside;
  return Side::kOutside;
}

int Gateway::listener_for(Side side, sip::Transport t) const {
  int li = transport_->find(side_name(side), t);
  if (li >= 0) return li;
  for (int i = 0; i < transport_->listeners(); ++i)
    if (transport_->listener(i).side == side_name(side)) return i;
  return -1;
}

const cfg::MediaSide& Gateway::media_side(Side s) const {
  return s == Side::kOutside ? cfg_.media().outside() : cfg_.media().inside();
}

std::string Gateway::via(int li, const std::string& branch) const {
  const net::ListenerSpec& l = transport_->listener(li);
  std::string host = l.advertised.empty() ? sip::ip_str(l.ip) : l.advertised;
  return std::string("SIP/2.0/") + sip::transport_name(l.transport) + " " + host + ":" +
         std::to_string(l.port) + ";branch=" + branch + ";rport";
}

std::string Gateway::our_uri(const std::string& user, int li) const {
  const net::ListenerSpec& l = transport_->listener(li);
  std::string host = l.advertised.empty() ? sip::ip_str(l.ip) : l.advertised;
  std::string u = std::string(l.transport == sip::Transport::kTls ? "sips:" : "sip:");
  if (!user.empty()) u += user + "@";
  u += host + ":" + std::to_string(l.port);
  if (l.transport == sip::Transport::kTcp) u += ";transport=tcp";
  return u;
}

void Gateway::reply(uint64_t stx, const Message& req, int code, const char* reason,
                    const std::string& to_tag) {
  Message r = sip::make_response(req, code, reason,
                                 to_tag.empty() && code > 100 ? sip::random_token(10) : to_tag);
  if (code == 405 || code == 200) r.add("Allow", kAllow);
  tx_.respond(stx, r);
}

// ---------------------------------------------------------------------------
// Input, abuse control

void Gateway::on_message(const Message& m, const Peer& from) {
  load_changed(admission_.observe(now_ms(), from.listener, transport_->rx_delay_us()));
  if (m.request) {
    ++counters_["requests_in"];
    if (side_of(from) == Side::kOutside) {
      if (blocked(from)) return;
      if (rate_limited(from)) return;
    }
  } else {
    ++counters_["responses_in"];
  }
  tx_.receive(m, from);
}

// Overload control's transitions: logged, counted and sent to operators.
// While shedding, a timer closes the intervals that no message closes, so
// that shedding stops when the load is gone rather than at the next call.
void Gateway::load_changed(int change) {
  if (change > 0) {
    ++counters_["overload_episodes"];
    std::fprintf(stderr, "sluice-controlplane: overload: SIP queued %lld ms; new calls get 503\n",
                 static_cast<long long>(admission_.delay_ms()));
    emit(13, 0, "", "", "on: SIP queued " + std::to_string(admission_.delay_ms()) + " ms");
  } else if (change < 0) {
    std::fprintf(stderr, "sluice-controlplane: overload over: SIP queued %lld ms\n",
                 static_cast<long long>(admission_.delay_ms()));
    emit(13, 0, "", "", "off: SIP queued " + std::to_string(admission_.delay_ms()) + " ms");
  }
  if (admission_.shedding() && overload_timer_ == 0) {
    overload_timer_ = timers_->after(Admission::kIntervalMs, [this] {
      overload_timer_ = 0;
      load_changed(admission_.tick(now_ms()));
    });
  }
}

void Gateway::on_bad(const Peer& from, sip::Error e, std::string_view raw) {
  ++counters_["bad_messages"];
  if (raw.size() < 8 || raw.compare(0, 4, "SIP/") == 0) return;  // responses are dropped
  // Best effort 400 (RFC 3261 21.4.1): the headers a response needs, taken
  // line by line from what did not parse.
  std::string via, from_h, to, callid, cseq;
  size_t pos = raw.find('\n');
  while (pos != std::string_view::npos && pos + 1 < raw.size()) {
    size_t end = raw.find('\n', pos + 1);
    std::string_view line = raw.substr(pos + 1, end == std::string_view::npos ? raw.size() - pos - 1
                                                                               : end - pos - 1);
    pos = end;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = sip::canonical_name(std::string(line.substr(0, colon)));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    name = sip::canonical_name(name);
    std::string value(line.substr(colon + 1));
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    if (name == "Via" && via.empty()) via = value;
    else if (name == "From" && from_h.empty()) from_h = value;
    else if (name == "To" && to.empty()) to = value;
    else if (name == "Call-ID" && callid.empty()) callid = value;
    else if (name == "CSeq" && cseq.empty()) cseq = value;
  }
  if (via.empty() || from_h.empty() || to.empty() || callid.empty() || cseq.empty()) return;
  if (cseq.rfind("ACK") != std::string::npos) return;  // never answer an ACK
  std::string r = "SIP/2.0 400 Bad Request\r\nVia: " + via + "\r\nFrom: " + from_h +
                  "\r\nTo: " + to + "\r\nCall-ID: " + callid + "\r\nCSeq: " + cseq +
                  "\r\nWarning: 399 sluice \"" + sip::describe(e) + "\"\r\nContent-Length: 0\r\n\r\n";
  transport_->send(from, r);
  ++counters_["bad_requests_answered"];
}

bool Gateway::blocked(const Peer& from) {
  auto it = blocks_.find(from.ip);
  if (it == blocks_.end() || it->second.blocked_until == 0) return false;
  if (it->second.blocked_until <= now_ms()) {
    it->second.blocked_until = 0;
    it->second.failures.clear();
    emit(7, 0, "", sip::ip_str(from.ip), "expired");
    return false;
  }
  ++it->second.dropped;
  ++counters_["blocked_drops"];
  return true;
}

bool Gateway::rate_limited(const Peer& from) {
  uint32_t max = cfg_.security().max_requests_per_s();
  if (max == 0) return false;
  int64_t sec = now_ms() / 1000;
  auto& r = rate_[from.ip];
  if (r.first != sec) {
    r = {sec, 0};
    if (rate_.size() > 100000) rate_.clear();  // bounded: a flood of sources resets it
  }
  if (++r.second <= max) return false;
  ++counters_["rate_limited"];
  return true;
}

void Gateway::count_auth_failure(uint32_t ip) {
  ++counters_["auth_failures"];
  Block& b = blocks_[ip];
  int64_t now = now_ms();
  int64_t window = int64_t{cfg_.security().auth_window_s()} * 1000;
  b.failures.erase(std::remove_if(b.failures.begin(), b.failures.end(),
                                  [&](int64_t t) { return now - t > window; }),
                   b.failures.end());
  b.failures.push_back(now);
  b.last_failure_unix_ms = unix_ms();
  if (b.blocked_until == 0 && b.failures.size() >= cfg_.security().auth_failures()) {
    b.blocked_until = now + int64_t{cfg_.security().block_s()} * 1000;
    ++counters_["sources_blocked"];
    emit(6, 0, "", sip::ip_str(ip), std::to_string(b.failures.size()) + " failures");
  }
}

bool Gateway::unblock(uint32_t ip) {
  auto it = blocks_.find(ip);
  if (it == blocks_.end()) return false;
  bool was = it->second.blocked_until != 0;
  blocks_.erase(it);
  if (was) emit(7, 0, "", sip::ip_str(ip), "operator");
  return was;
}

// ---------------------------------------------------------------------------
// Dispatch

void Gateway::on_request(uint64_t stx, const Message& req, const Peer& from) {
  if (req.max_forwards == 0 && req.method != "ACK") {
    reply(stx, req, 483, "Too Many Hops");
    return;
  }
  if (req.method != "ACK" && req.method != "CANCEL" && !refuse_unsupported(stx, req)) return;
  if (!req.to_tag.empty()) {
    std::string key = req.call_id + "|" + req.to_tag;
    auto it = dialogs_.find(key);
    if (it == dialogs_.end()) {
      auto si = sub_dialogs_.find(key);
      auto s = si == sub_dialogs_.end() ? subs_.end() : subs_.find(si->second.first);
      if (s == subs_.end()) {
        reply(stx, req, 481, "Call/Transaction Does Not Exist");
        return;
      }
      handle_sub_in_dialog(stx, req, from, s->second, si->second.second);
      return;
    }
    auto c = calls_.find(it->second.first);
    if (c == calls_.end()) {
      reply(stx, req, 481, "Call/Transaction Does Not Exist");
      return;
    }
    handle_in_dialog(stx, req, from, c->second, it->second.second);
    return;
  }
  // Preloaded Route headers from the Internet are removed (we are the only
  // hop a teleworker gets to name).
  if (req.method == "REGISTER") {
    handle_register(stx, req, from);
  } else if (req.method == "INVITE") {
    handle_invite(stx, req, from);
  } else if (req.method == "SUBSCRIBE") {
    handle_subscribe(stx, req, from);
  } else if (req.method == "MESSAGE" || req.method == "PUBLISH" ||
             (side_of(from) == Side::kInside &&
              (req.method == "NOTIFY" ||
               (req.method == "OPTIONS" && !sip::param(req.uri, "sltk").empty())))) {
    // Pager messages and presence both ways; from the PBX also unsolicited
    // NOTIFY (message waiting without a subscription) and OPTIONS aimed at a
    // registered phone's Contact (a PBX checking that the phone is there).
    relay_out_of_dialog(stx, req, from);
  } else if (req.method == "OPTIONS") {
    Message r = sip::make_response(req, 200, "OK", sip::random_token(10));
    r.add("Allow", kAllow);
    r.add("Accept", "application/sdp");
    r.add("Supported", kSupported);
    tx_.respond(stx, r);
  } else if (req.method == "CANCEL" || req.method == "BYE" || req.method == "PRACK" ||
             req.method == "UPDATE" || req.method == "INFO") {
    reply(stx, req, 481, "Call/Transaction Does Not Exist");
  } else {
    reply(stx, req, 405, "Method Not Allowed");
  }
}

// RFC 3261 8.2.2.3: a Require naming an extension we do not implement gets
// 420 with Unsupported (each leg is our own dialog, so it is ours to
// understand); RFC 3261 8.2.3: a body that is not SDP where an offer or
// answer may be (INVITE, UPDATE, PRACK) gets 415 with Accept, since the
// relay could not anchor the media it describes. True when the request may
// go on.
bool Gateway::refuse_unsupported(uint64_t stx, const Message& req) {
  std::string unsupported;
  for (const std::string& t : option_tags(req, "Require")) {
    std::string tag = lower(t);
    if (tag == "replaces" || tag == "timer" || tag == "100rel") continue;
    unsupported += (unsupported.empty() ? "" : ", ") + tag;
  }
  if (!unsupported.empty()) {
    ++counters_["bad_extension"];
    Message r = sip::make_response(req, 420, "Bad Extension", sip::random_token(10));
    r.add("Unsupported", unsupported);
    tx_.respond(stx, r);
    return false;
  }
  if ((req.method == "INVITE" || req.method == "UPDATE" || req.method == "PRACK") &&
      !req.body.empty() && !has_sdp(req)) {
    ++counters_["unsupported_media_type"];
    Message r = sip::make_response(req, 415, "Unsupported Media Type", sip::random_token(10));
    r.add("Accept", "application/sdp");
    tx_.respond(stx, r);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Upstreams

sip::Peer Gateway::upstream_peer(int* index, const std::vector<int>* exclude) {
  *index = -1;
  if (upstreams_.empty()) return Peer{};
  auto excluded = [this, exclude](size_t i) {
    return upstreams_[i].withdrawn ||
           (exclude && std::find(exclude->begin(), exclude->end(), static_cast<int>(i)) != exclude->end());
  };
  // Up first, then not yet probed, then down; lower priority first; weight
  // picks among equals.
  auto rank = [](int st) { return st == 2 ? 0 : st == 1 ? 1 : 2; };
  int best_rank = 3;
  uint32_t best_prio = UINT32_MAX;
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    const UpstreamState& u = upstreams_[i];
    if (excluded(i)) continue;
    int r = rank(u.state);
    if (r < best_rank || (r == best_rank && u.spec.priority() < best_prio)) {
      best_rank = r;
      best_prio = u.spec.priority();
    }
  }
  if (best_rank == 3) return Peer{};  // every one excluded
  std::vector<int> pick;
  uint64_t total = 0;
  for (size_t i = 0; i < upstreams_.size(); ++i)
    if (!excluded(i) && rank(upstreams_[i].state) == best_rank &&
        upstreams_[i].spec.priority() == best_prio) {
      pick.push_back(static_cast<int>(i));
      total += upstreams_[i].spec.weight() + 1;
    }
  static std::mt19937_64 rng(std::random_device{}());
  uint64_t r = total ? rng() % total : 0;
  int chosen = pick.front();
  for (int i : pick) {
    uint64_t w = upstreams_[i].spec.weight() + 1;
    if (r < w) {
      chosen = i;
      break;
    }
    r -= w;
  }
  *index = chosen;
  ++upstreams_[chosen].requests;
  return upstreams_[chosen].peer;
}

void Gateway::upstream_result(int index, bool ok, int64_t rtt_ms) {
  if (index < 0 || index >= static_cast<int>(upstreams_.size())) return;
  UpstreamState& u = upstreams_[index];
  std::string addr = u.spec.host() + ":" + std::to_string(u.peer.port);
  if (ok) {
    u.failures = 0;
    if (rtt_ms >= 0) u.last_rtt_ms = rtt_ms;
    if (u.state != 2) {
      u.state = 2;
      u.last_change_unix_ms = unix_ms();
      emit(8, 0, "", addr, "");
    }
    return;
  }
  ++u.failures;
  if (u.failures >= cfg_.monitor().failures_down() && u.state != 3) {
    u.state = 3;
    u.last_change_unix_ms = unix_ms();
    emit(9, 0, "", addr, std::to_string(u.failures) + " failures");
  }
}

void Gateway::set_srv_targets(const std::vector<net::SrvTarget>& targets, const std::string& via) {
  const std::string& n = cfg_.upstream_srv();
  size_t before = 0, after = 0;
  for (UpstreamState& u : upstreams_)
    if (u.srv && !u.withdrawn) {
      ++before;
      u.withdrawn = true;
    }
  for (const net::SrvTarget& t : targets) {
    sip::Transport tr = t.transport == net::SrvTransport::kTls   ? sip::Transport::kTls
                        : t.transport == net::SrvTransport::kTcp ? sip::Transport::kTcp
                                                                 : sip::Transport::kUdp;
    cfg::Transport ct = tr == sip::Transport::kTls ? cfg::TLS : tr == sip::Transport::kTcp ? cfg::TCP : cfg::UDP;
    UpstreamState* u = nullptr;
    for (UpstreamState& x : upstreams_)
      if (x.srv && x.peer.ip == t.ip && x.peer.port == t.port && x.peer.transport == tr) u = &x;
    if (!u) {
      upstreams_.emplace_back();
      u = &upstreams_.back();  // indices stay stable: entries are withdrawn, never erased
      u->srv = true;
      u->peer.ip = t.ip;
      u->peer.port = t.port;
      u->peer.transport = tr;
      u->peer.listener = listener_for(Side::kInside, tr);
      u->withdrawn = true;  // filled in below
    }
    if (!u->withdrawn) continue;  // listed twice
    u->withdrawn = false;
    u->name = t.target;
    u->spec.set_host(sip::ip_str(t.ip));
    u->spec.set_port(t.port);
    u->spec.set_priority(t.priority);
    u->spec.set_weight(t.weight);
    u->spec.set_transport(ct);
    ++after;
  }
  ++counters_["srv_lookups"];
  if (before != after || via != srv_via_)
    fprintf(stderr, "sluice-controlplane: %s: %zu upstream targets from %s (was %zu)\n", n.c_str(),
            after, via.c_str(), before);
  srv_via_ = via;
}

void Gateway::srv_failed(const std::string& err) {
  if (counters_["srv_failures"]++ == 0 || counters_["srv_failures"] % 60 == 0)
    fprintf(stderr, "sluice-controlplane: DNS lookup failed (%s); keeping the last answer\n",
            err.c_str());
}

void Gateway::probe_upstreams() {
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    UpstreamState& u = upstreams_[i];
    if (u.probing || u.peer.listener < 0 || u.withdrawn) continue;
    Message m;
    m.request = true;
    m.method = "OPTIONS";
    m.uri = "sip:" + u.spec.host() + ":" + std::to_string(u.peer.port);
    m.add("Via", via(u.peer.listener, sip::new_branch()));
    m.add("Max-Forwards", "70");
    m.add("From", "<" + our_uri("sluice", u.peer.listener) + ">;tag=" +
                      sip::random_token(10));
    m.add("To", "<" + m.uri + ">");
    m.add("Call-ID", sip::random_token(20));
    m.add("CSeq", "1 OPTIONS");
    m.add("Accept", "application/sdp");
    u.probing = true;
    int64_t sent = now_ms();
    int idx = static_cast<int>(i);
    tx_.request(m, u.peer, [this, idx, sent](const Message& r, bool local) {
      if (r.status < 200) return;
      upstreams_[idx].probing = false;
      upstream_result(idx, !local, now_ms() - sent);
    });
  }
  uint32_t every = cfg_.monitor().options_interval_s();
  bool any_down = std::any_of(upstreams_.begin(), upstreams_.end(),
                              [](const UpstreamState& u) { return u.state == 3; });
  int64_t next = int64_t{every} * 1000 / (any_down ? 3 : 1);
  probe_timer_ = timers_->after(next, [this] { probe_upstreams(); });
}

// ---------------------------------------------------------------------------
// Registrations

void Gateway::handle_register(uint64_t stx, const Message& req, const Peer& from) {
  if (side_of(from) != Side::kOutside) {
    reply(stx, req, 405, "Method Not Allowed");
    return;
  }
  int ui;
  Peer to = upstream_peer(&ui);
  if (ui < 0 || to.listener < 0) {
    reply(stx, req, 503, "Service Unavailable");
    return;
  }
  const std::string* to_hdr = req.get("To");
  std::string aor = to_hdr ? sip::uri_of(*to_hdr) : std::string();
  // Each phone Contact becomes one of ours: the user name kept, a token that
  // finds the binding again.
  struct Pending {
    std::string token, contact, user, params;  // user empty: "*"
  };
  auto pending = std::make_shared<std::vector<Pending>>();
  for (const std::string& c : req.all("Contact")) {
    if (c == "*") {
      pending->push_back({});
      continue;
    }
    std::string uri = sip::uri_of(c);
    sip::Uri u;
    if (!sip::parse_uri(uri, &u)) {
      reply(stx, req, 400, "Bad Contact");
      return;
    }
    std::string token;
    auto range = by_user_.equal_range(u.user);
    for (auto it = range.first; it != range.second; ++it) {
      const Binding& b = bindings_.at(it->second);
      if (b.aor == aor && b.contact == uri) token = b.token;
    }
    if (token.empty()) token = sip::random_token(12);
    pending->push_back({token, uri, u.user, sip::params_of(c)});
  }
  auto r = std::make_shared<UpstreamRequest>();
  r->what = "REGISTER " + aor;
  // The REGISTER as the upstream `to` gets it (Via and Contacts name the
  // listener toward it).
  r->build = [this, req, pending](const Peer& to) {
    Message up = req;
    up.remove("Via");
    up.remove("Route");
    up.remove("Record-Route");
    up.remove("Contact");
    up.remove("Path");
    up.prepend("Via", via(to.listener, sip::new_branch()));
    up.set("Max-Forwards", std::to_string(req.max_forwards < 0 ? 69 : req.max_forwards - 1));
    for (const Pending& p : *pending)
      up.add("Contact", p.token.empty() ? std::string("*")
                                        : "<" + our_uri(p.user, to.listener) + ";sltk=" + p.token +
                                              ">" + p.params);
    return up;
  };
  std::string user_agent = req.value("User-Agent");
  Message orig = req;
  r->done = [this, stx, orig, from, aor, pending, user_agent](const Message& r, bool local,
                                                              int ui, int64_t rtt) {
    upstream_result(ui, !local, rtt);
    Message out = sip::make_response(orig, r.status, r.reason.c_str());
    out.set("To", r.get("To") ? *r.get("To") : orig.value("To"));
    copy_headers(r, &out, true);  // to the phone
    auth_result(orig, r.status, from);
    if (r.status >= 200 && r.status < 300) {
      ++counters_["registrations_ok"];
      uint32_t dflt = parse_u32(r.value("Expires"), 3600);
      std::vector<std::string> listed;
      for (const std::string& c : r.all("Contact")) {
        std::string uri = sip::uri_of(c);
        std::string token = sip::param(uri, "sltk");
        if (token.empty()) continue;
        auto p = std::find_if(pending->begin(), pending->end(),
                              [&](const Pending& x) { return x.token == token; });
        auto b = bindings_.find(token);
        if (p == pending->end() && b == bindings_.end()) continue;  // another gateway's
        uint32_t exp = parse_u32(sip::param(c, "expires"), dflt);
        exp = std::min(exp, cfg_.registrations().max_expires_s());
        listed.push_back(token);
        if (exp == 0) {
          if (b != bindings_.end()) {
            emit(5, 0, b->second.aor, from.str(), "removed");
            journal_unbind(b->second);
            erase_binding(b);
          }
          continue;
        }
        if (b == bindings_.end()) {
          if (bindings_.size() >= cfg_.registrations().max_bindings()) continue;
          Binding nb;
          nb.token = token;
          nb.aor = aor;
          nb.contact = p->contact;
          sip::Uri u;
          sip::parse_uri(p->contact, &u);
          nb.user = u.user;
          b = bindings_.emplace(token, nb).first;
          index_binding(b->second);
          emit(4, 0, aor, from.str(), "");
        }
        Binding& bd = b->second;
        bd.peer = from;
        bd.expires_at = now_ms() + int64_t{exp} * 1000;
        expiries_.emplace(bd.expires_at, token);
        bd.registered_at = unix_ms();
        bd.user_agent = user_agent;
        bd.listener = transport_->listener(from.listener).name;
        journal_binding(bd);
        out.add("Contact", "<" + bd.contact + ">;expires=" + std::to_string(exp));
        // Mobile clients keep their connection open longer (battery).
        if (from.conn)
          for (const std::string& m : cfg_.registrations().mobile_user_agents())
            if (!m.empty() && user_agent.find(m) != std::string::npos)
              transport_->set_idle_timeout(from.conn,
                                           static_cast<int>(cfg_.registrations().mobile_idle_timeout_s()));
      }
      // Contacts of this request the upstream no longer lists are gone.
      for (const Pending& p : *pending) {
        if (std::find(listed.begin(), listed.end(), p.token) != listed.end()) continue;
        auto b = bindings_.find(p.token);
        if (b == bindings_.end()) continue;
        emit(5, 0, b->second.aor, from.str(), "removed");
        journal_unbind(b->second);
        erase_binding(b);
      }
      auto bl = blocks_.find(from.ip);
      if (bl != blocks_.end() && bl->second.blocked_until == 0) blocks_.erase(bl);
    }
    tx_.respond(stx, out);
  };
  send_upstream(r, ui, to);
}

// A binding is found by its token, else by user name: its Contact's user
// (what a PBX that calls the registered Contact sends) and its AOR's user
// (what a PBX that rebuilds the Request-URI from the AOR sends), which
// differ for phones like baresip ("alice-0x55..." vs "alice").
void Gateway::index_binding(const Binding& b) {
  by_user_.emplace(b.user, b.token);
  std::string au = user_of(b.aor);
  if (!au.empty() && au != b.user) by_user_.emplace(au, b.token);
}

void Gateway::erase_binding(std::unordered_map<std::string, Binding>::iterator it) {
  const std::string& token = it->first;
  for (const std::string& user : {it->second.user, user_of(it->second.aor)}) {
    auto range = by_user_.equal_range(user);
    for (auto u = range.first; u != range.second; ++u)
      if (u->second == token) {
        by_user_.erase(u);
        break;
      }
  }
  bindings_.erase(it);
}

void Gateway::expire_bindings() {
  int64_t now = now_ms();
  while (!expiries_.empty() && expiries_.top().first <= now) {
    Expiry e = expiries_.top();
    expiries_.pop();
    auto it = bindings_.find(e.second);
    if (it == bindings_.end() || it->second.expires_at != e.first) continue;  // gone or refreshed
    emit(5, 0, it->second.aor, it->second.peer.str(), "expired");
    ++counters_["registrations_expired"];
    erase_binding(it);
  }
  // Old failure counts go too.
  for (auto it = blocks_.begin(); it != blocks_.end();) {
    Block& b = it->second;
    int64_t window = int64_t{cfg_.security().auth_window_s()} * 1000;
    if (b.blocked_until && b.blocked_until <= now) {
      emit(7, 0, "", sip::ip_str(it->first), "expired");
      it = blocks_.erase(it);
      continue;
    }
    if (!b.blocked_until && (b.failures.empty() || now - b.failures.back() > window)) {
      it = blocks_.erase(it);
      continue;
    }
    ++it;
  }
  expiry_timer_ = timers_->after(1000, [this] { expire_bindings(); });
}

const Binding* Gateway::find_binding(const Message& req) const {
  std::string token = sip::param(req.uri, "sltk");
  if (!token.empty()) {
    auto it = bindings_.find(token);
    if (it != bindings_.end()) return &it->second;
  }
  // Interop: PBXs that rebuild the Request-URI keep only the user name.
  sip::Uri u;
  if (!sip::parse_uri(req.uri, &u)) return nullptr;
  const Binding* best = nullptr;
  auto range = by_user_.equal_range(u.user);
  for (auto it = range.first; it != range.second; ++it) {
    const Binding& b = bindings_.at(it->second);
    if (!best || b.registered_at > best->registered_at) best = &b;
  }
  return best;
}

// ---------------------------------------------------------------------------
// Calls: building requests on a leg

Message Gateway::new_request(Leg& l, const std::string& method) {
  Message m;
  m.request = true;
  m.method = method;
  m.uri = l.remote_target;
  m.add("Via", via(l.listener, sip::new_branch()));
  for (const std::string& r : l.route_set) m.add("Route", r);
  m.add("Max-Forwards", "70");
  m.add("From", l.local_hdr);
  m.add("To", l.remote_hdr);
  m.add("Call-ID", l.call_id);
  if (method != "ACK" && method != "CANCEL") ++l.local_cseq;
  m.add("CSeq", std::to_string(l.local_cseq) + " " + method);
  if (method == "INVITE" || method == "UPDATE" || method == "REFER" || method == "NOTIFY" ||
      method == "SUBSCRIBE")
    m.add("Contact", l.contact);
  return m;
}


std::string Gateway::map_replaces(const std::string& value, Side to) const {
  // Replaces: call-id;to-tag=X;from-tag=Y names a dialog on the sender's leg;
  // the other leg's dialog of the same call has its own identifiers.
  std::string cid = value.substr(0, value.find(';'));
  while (!cid.empty() && cid.back() == ' ') cid.pop_back();
  std::string to_tag = sip::param(value, "to-tag"), from_tag = sip::param(value, "from-tag");
  Side from = other(to);
  for (const auto& [id, c] : calls_) {
    const Leg& l = c.leg[static_cast<int>(from)];
    if (l.call_id != cid) continue;
    if (!(l.local_tag == to_tag && l.remote_tag == from_tag) &&
        !(l.local_tag == from_tag && l.remote_tag == to_tag))
      continue;
    const Leg& o = c.leg[static_cast<int>(to)];
    // to-tag is the tag of the dialog's recipient (the UA that gets the
    // INVITE with Replaces, here our peer on the other leg).
    std::string out = o.call_id + ";to-tag=" + o.remote_tag + ";from-tag=" + o.local_tag;
    if (value.find("early-only") != std::string::npos) out += ";early-only";
    return out;
  }
  return value;
}

// Attended transfer (RFC 3515 with RFC 3891): Refer-To carries the dialog
// to replace as a URI header, "<sip:bob@host?Replaces=cid%3Bto-tag%3Dx%3B
// from-tag%3Dy>", naming the sender's leg; the far side knows only our leg
// toward it, so the dialog is mapped like a Replaces header.
std::string Gateway::map_refer_to(const std::string& value, Side to) const {
  size_t q = value.find('?');
  if (q == std::string::npos) return value;
  size_t end = value.find('>', q);
  if (end == std::string::npos) end = value.size();
  size_t at = q + 1;
  while (at < end) {
    size_t amp = value.find('&', at);
    if (amp == std::string::npos || amp > end) amp = end;
    static constexpr std::string_view kName = "replaces=";
    if (amp - at > kName.size() && lower(value.substr(at, kName.size())) == kName) {
      size_t vs = at + kName.size();
      std::string mapped = map_replaces(sip::unescape(value.substr(vs, amp - vs)), to);
      return value.substr(0, vs) + sip::escape_header_value(mapped) + value.substr(amp);
    }
    at = amp + 1;
  }
  return value;
}

// ---------------------------------------------------------------------------
// SDP

bool Gateway::rewrite_sdp(Call& call, Side from, bool offer, const std::string& body,
                          std::string* out, int* code, bool settle) {
  sdp::Session s;
  if (sdp::parse(body, &s) != sdp::Error::kNone) {
    ++counters_["bad_sdp"];
    *code = 400;
    return false;
  }
  Side to = other(from);
  const cfg::MediaSide& fpol = media_side(from);
  const cfg::MediaSide& tpol = media_side(to);
  if (s.media.size() > 6) {  // at most 6 streams per call
    *code = 488;
    return false;
  }
  if (!offer && s.media.size() > call.streams.size()) {
    *code = 488;
    return false;
  }
  // The dataplane relays to IPv4 addresses: a stream on a host name or an
  // IPv6 address could get no flow, so it is refused here, before any state
  // changes, rather than by the dataplane after the call is up.
  for (const sdp::Media& m : s.media) {
    uint32_t ip;
    if (m.port != 0 && m.proto.rfind("RTP/", 0) == 0 && !sip::parse_ip(m.addr, &ip)) {
      ++counters_["sdp_unsupported_address"];
      *code = 488;
      return false;
    }
  }
  std::vector<sdp::MediaPlan> plan;
  for (size_t i = 0; i < s.media.size(); ++i) {
    const sdp::Media& m = s.media[i];
    if (i >= call.streams.size()) call.streams.emplace_back();
    Stream& st = call.streams[i];
    st.type = m.type;
    bool rtp = m.proto.rfind("RTP/", 0) == 0;
    if (m.port == 0 || !rtp) {
      st.disabled = true;
      sdp::MediaPlan p;
      p.disabled = true;
      plan.push_back(p);
      continue;
    }
    if (st.side[0].relay_port == 0) {
      uint16_t a = ports_[0]->take();
      uint16_t b = a ? ports_[1]->take() : 0;
      if (!b) {
        if (a) ports_[0]->give(a);
        ++counters_["ports_exhausted"];
        *code = 503;
        return false;
      }
      st.side[0].relay_port = a;
      st.side[1].relay_port = b;
    }
    st.disabled = false;
    st.refused = false;  // asked for again: its flows are tried again
    StreamSide& fs = st.side[static_cast<int>(from)];
    StreamSide& ts = st.side[static_cast<int>(to)];
    bool from_srtp = m.proto.find("SAVP") != std::string::npos;
    if ((fpol.srtp() == cfg::MANDATORY && !from_srtp) || (fpol.srtp() == cfg::OFF && from_srtp)) {
      ++counters_["srtp_policy_rejects"];
      *code = 488;
      return false;
    }
    fs.peer_addr = m.addr;
    fs.peer_port = m.port;
    fs.peer_rtcp = m.rtcp_mux ? m.port : (m.rtcp_port ? m.rtcp_port : uint16_t(m.port + 1));
    fs.profile = m.proto;
    fs.fmts = m.fmts;
    if (offer || !m.rtcp_mux) st.rtcp_mux = m.rtcp_mux;
    st.direction = m.direction;
    if (!offer) {
      st.codecs.clear();
      for (const std::string& f : m.fmts) {
        std::string name = f;
        for (const sdp::Line& l : m.lines)
          if (l.type == 'a' && l.value.rfind("rtpmap:" + f + " ", 0) == 0)
            name = f + " " + l.value.substr(8 + f.size());
        st.codecs.push_back(name);
      }
    }
    // The sender's keys.
    if (from_srtp) {
      std::vector<sdp::Crypto> lines;
      for (const sdp::Line& l : m.lines) {
        sdp::Crypto c;
        if (l.type == 'a' && l.value.rfind("crypto:", 0) == 0 && sdp::parse_crypto(l.value.substr(7), &c))
          lines.push_back(c);
      }
      bool found = false;
      for (const sdp::Crypto& c : lines) {
        const SuiteInfo* si = suite_by_name(c.suite);
        std::string k, salt;
        if (!si || !c.mki.empty() || !split_inline_key(*si, c.key, &k, &salt)) continue;
        if (!offer) {  // must be one we offered, same tag and suite
          auto o = std::find_if(fs.keys.offered.begin(), fs.keys.offered.end(),
                                [&](const sdp::Crypto& x) { return x.tag == c.tag && x.suite == c.suite; });
          if (o == fs.keys.offered.end()) continue;
          fs.keys.tx = si;
          fs.keys.tx_key = o->key;
          fs.keys.tx_tag = o->tag;
        } else {
          fs.keys.tx_tag = c.tag;
        }
        fs.keys.rx = si;
        fs.keys.rx_key = c.key;
        found = true;
        break;
      }
      if (!found) {
        ++counters_["srtp_no_usable_crypto"];
        *code = 488;
        return false;
      }
      if (offer && fs.keys.tx && fs.keys.tx != fs.keys.rx) fs.keys.tx_key.clear();
      if (!offer) fs.keys.offered.clear();
    } else {
      fs.keys.rx = nullptr;
      fs.keys.rx_key.clear();
      if (!offer) {
        fs.keys.tx = nullptr;
        fs.keys.tx_key.clear();
        fs.keys.offered.clear();
      }
    }
    fs.srtp = from_srtp;
    // The other side's version.
    bool to_srtp;
    if (offer)
      to_srtp = tpol.srtp() == cfg::MANDATORY ? true : tpol.srtp() == cfg::OFF ? false : from_srtp;
    else
      to_srtp = ts.srtp;
    sdp::MediaPlan p;
    p.addr = tpol.advertised_address().empty() ? tpol.address() : tpol.advertised_address();
    p.port = ts.relay_port;
    p.srtp = to_srtp;
    if (to_srtp) {
      if (offer) {
        ts.keys.offered.clear();
        uint32_t tag = 1;
        for (const std::string& name : tpol.suites()) {
          const SuiteInfo* si = suite_by_name(name);
          if (!si) continue;
          sdp::Crypto c;
          c.tag = tag++;
          c.suite = si->name;
          // A key the leg already has stays (RFC 4568 7.1.4 allows either);
          // a new one would restart its streams in the dataplane.
          c.key = ts.keys.tx == si && !ts.keys.tx_key.empty() ? ts.keys.tx_key : new_inline_key(*si);
          ts.keys.offered.push_back(c);
        }
        p.crypto = ts.keys.offered;
      } else {
        const SuiteInfo* si = ts.keys.rx;
        if (!si) {
          *code = 488;
          return false;
        }
        if (ts.keys.tx != si || ts.keys.tx_key.empty()) {
          ts.keys.tx = si;
          ts.keys.tx_key = new_inline_key(*si);
        }
        sdp::Crypto c;
        c.tag = ts.keys.tx_tag;
        c.suite = si->name;
        c.key = ts.keys.tx_key;
        p.crypto.push_back(c);
      }
    }
    if (offer) ts.srtp = to_srtp;
    plan.push_back(p);
  }
  call.on_hold = false;
  for (const Stream& st : call.streams)
    if (!st.disabled && (st.direction == "sendonly" || st.direction == "inactive" ||
                         st.side[0].peer_addr == "0.0.0.0" || st.side[1].peer_addr == "0.0.0.0"))
      call.on_hold = true;
  const cfg::MediaSide& tp = media_side(to);
  *out = sdp::rewrite(s, plan, tp.advertised_address().empty() ? tp.address() : tp.advertised_address(),
                      ++sdp_version_);
  // Offer/answer bookkeeping for refreshes: an answer settles the offer we
  // sent the other way and this answer.
  if (!settle) return true;
  if (offer) {
    call.sdp_offered = *out;
  } else {
    call.sdp_sent[static_cast<int>(to)] = *out;
    if (!call.sdp_offered.empty()) call.sdp_sent[static_cast<int>(from)] = std::move(call.sdp_offered);
    call.sdp_offered.clear();
  }
  return true;
}

// ---------------------------------------------------------------------------
// Flows

std::vector<FlowRule> Gateway::flow_rules(const Call& call) const {
  std::vector<FlowRule> rules;
  const std::string addr[2] = {media_side(Side::kOutside).address(),
                               media_side(Side::kInside).address()};
  const std::string port_name[2] = {
      media_side(Side::kOutside).dataplane_port().empty() ? "outside"
                                                          : media_side(Side::kOutside).dataplane_port(),
      media_side(Side::kInside).dataplane_port().empty() ? "inside"
                                                         : media_side(Side::kInside).dataplane_port()};
  const std::string& latch = cfg_.media().latch();
  int policy = latch == "first" ? 1 : latch == "strict" ? 3 : 2;
  for (const Stream& st : call.streams) {
    if (!st.batched()) continue;
    for (int in = 0; in < 2; ++in) {
      int out = 1 - in;
      const StreamSide& src = st.side[in];
      const StreamSide& dst = st.side[out];
      if (dst.peer_addr == "0.0.0.0") continue;  // held the old way: keep what is there
      for (int rtcp = 0; rtcp < (st.rtcp_mux ? 1 : 2); ++rtcp) {
        FlowRule r;
        r.local_addr = addr[in];
        r.local_port = static_cast<uint16_t>(src.relay_port + rtcp);
        r.kind = st.rtcp_mux ? 3 : rtcp ? 2 : 1;
        r.expected_addr = src.peer_addr == "0.0.0.0" ? "0.0.0.0" : src.peer_addr;
        r.expected_port = rtcp ? src.peer_rtcp : src.peer_port;
        r.latch = policy;
        r.max_senders = cfg_.media().max_senders();
        r.egress_port = port_name[out];
        r.src_addr = addr[out];
        r.src_port = static_cast<uint16_t>(dst.relay_port + rtcp);
        r.dst_addr = dst.peer_addr;
        r.dst_port = rtcp ? dst.peer_rtcp : dst.peer_port;
        r.timeout_s = cfg_.media().inactivity_timeout_s();
        r.dscp = st.type == "video" ? cfg_.media().video_dscp() : cfg_.media().audio_dscp();
        r.ttl_reset = cfg_.media().ttl_reset();
        r.cookie = call.id;
        if (src.srtp && src.keys.rx) {
          r.decrypt.suite = src.keys.rx->dataplane;
          split_inline_key(*src.keys.rx, src.keys.rx_key, &r.decrypt.key, &r.decrypt.salt);
        }
        if (dst.srtp && dst.keys.tx) {
          r.encrypt.suite = dst.keys.tx->dataplane;
          split_inline_key(*dst.keys.tx, dst.keys.tx_key, &r.encrypt.key, &r.encrypt.salt);
        }
        rules.push_back(std::move(r));
      }
    }
  }
  return rules;
}

std::vector<const FlowRule*> merge_upserts(const std::vector<const std::vector<FlowRule>*>& batches) {
  std::vector<const FlowRule*> out;
  std::set<std::pair<std::string_view, uint16_t>> seen;
  for (auto b = batches.rbegin(); b != batches.rend(); ++b)
    for (auto r = (*b)->rbegin(); r != (*b)->rend(); ++r)
      if (seen.emplace(r->local_addr, r->local_port).second) out.push_back(&*r);
  std::reverse(out.begin(), out.end());
  return out;
}

void Gateway::push_flows(Call& call) {
  std::vector<FlowRule> rules = flow_rules(call);
  if (rules.empty()) return;
  if (flows_->upsert(rules)) {
    uint8_t streams = 0;
    for (size_t i = 0; i < call.streams.size() && i < 8; ++i)
      if (call.streams[i].batched()) streams |= static_cast<uint8_t>(1u << i);
    call.batches.push_back(streams);
    call.flows_pushed = true;
    counters_["flows_pushed"] += rules.size();
    ++counters_["flow_batches"];
  } else {
    ++counters_["flow_push_failures"];
  }
}

std::vector<FlowKey> Gateway::flow_keys(const Call& call) const {
  const std::string& out_addr = media_side(Side::kOutside).address();
  const std::string& in_addr = media_side(Side::kInside).address();
  std::vector<FlowKey> keys;
  for (const Stream& st : call.streams) {
    if (!st.side[0].relay_port || st.refused) continue;
    for (int r = 0; r < 2; ++r) {
      keys.emplace_back(out_addr, static_cast<uint16_t>(st.side[0].relay_port + r));
      keys.emplace_back(in_addr, static_cast<uint16_t>(st.side[1].relay_port + r));
    }
  }
  return keys;
}

void Gateway::remove_flows(Call& call) {
  auto keys = flow_keys(call);
  if (!keys.empty()) flows_->remove(keys);
}

std::vector<FlowKey> Gateway::owned_flows() const {
  std::vector<FlowKey> all;
  for (const auto& [id, c] : calls_) {
    auto k = flow_keys(c);
    all.insert(all.end(), k.begin(), k.end());
  }
  return all;
}

// ---------------------------------------------------------------------------
// Calls: the dialog-creating INVITE

// A new dialog-creating request from side `fs`: to an upstream PBX from the
// outside (*ui its index), to a registered phone's binding from the inside.
// Answers 503/404 itself and returns false when there is nowhere to go.
bool Gateway::route_new(uint64_t stx, const Message& req, Side fs, Peer* target, std::string* ruri,
                        int* ui) {
  *ruri = req.uri;
  *ui = -1;
  if (fs == Side::kOutside) {
    *target = upstream_peer(ui);
    if (*ui < 0 || target->listener < 0) {
      reply(stx, req, 503, "Service Unavailable");
      return false;
    }
    return true;
  }
  const Binding* b = find_binding(req);
  if (!b) {
    reply(stx, req, 404, "Not Found");
    return false;
  }
  *target = b->peer;
  *ruri = b->contact;
  return true;
}

// The two dialogs of a B2BUA pair: `a` toward the sender of `req` (we are
// its UAS), `b` toward `target` (we are its UAC, with our own Call-ID and tag).
void Gateway::init_legs(const Message& req, const Peer& from, const Peer& target,
                        const std::string& ruri, Leg* a, Leg* b) const {
  a->call_id = req.call_id;
  a->remote_tag = req.from_tag;
  a->local_tag = sip::random_token(10);
  a->remote_hdr = req.value("From");
  a->local_hdr = sip::set_param(req.value("To"), "tag", a->local_tag);
  a->remote_cseq = req.cseq;
  a->remote_target = req.get("Contact") ? sip::uri_of(*req.get("Contact")) : "";
  a->route_set = req.all("Record-Route");
  a->peer = from;
  a->listener = from.listener;
  a->contact = "<" + our_uri(user_of(a->local_hdr), from.listener) + ">";
  a->user_agent = req.value("User-Agent");
  b->uac = true;
  b->call_id = sip::random_token(16) + "@sluice";
  b->local_tag = sip::random_token(10);
  b->local_hdr = sip::set_param(a->remote_hdr, "tag", b->local_tag);
  b->remote_hdr = req.value("To");
  b->local_cseq = 0;
  b->remote_target = ruri;
  b->peer = target;
  b->listener = target.listener;
  b->contact = "<" + our_uri(user_of(a->remote_hdr), target.listener) + ">";
}

// RFC 3261 12.2.2: an in-dialog request must carry a CSeq above the last one;
// answers 500 itself when it does not.
bool Gateway::accept_cseq(uint64_t stx, const Message& req, Leg& l) {
  if (req.method != "ACK" && req.method != "CANCEL" && l.remote_cseq != 0 &&
      req.cseq <= l.remote_cseq) {
    reply(stx, req, 500, "Server Internal Error", l.local_tag);
    return false;
  }
  l.remote_cseq = req.cseq;
  return true;
}

// 401/407/403 from upstream to a teleworker's request: a failed
// authentication when the request carried credentials (or was refused
// outright), counted against its source address.
void Gateway::auth_result(const Message& req, int status, const Peer& from) {
  if (side_of(from) != Side::kOutside) return;
  if (status == 403 ||
      ((status == 401 || status == 407) &&
       (req.get("Authorization") || req.get("Proxy-Authorization"))))
    count_auth_failure(from.ip);
}

// Overload control (admission.h): a new call over a limit gets 503, with
// Retry-After when configured, before anything is allocated for it.
bool Gateway::admit_call(uint64_t stx, const Message& req) {
  Admission::Verdict v = admission_.admit(now_ms(), calls_.size());
  if (v == Admission::Verdict::kAdmit) return true;
  const char* counter = v == Admission::Verdict::kMaxCalls ? "calls_refused_max_calls"
                        : v == Admission::Verdict::kRate   ? "calls_refused_rate"
                                                           : "calls_refused_overload";
  ++counters_[counter];
  Message r = sip::make_response(req, 503, "Service Unavailable", sip::random_token(10));
  if (uint32_t s = cfg_.overload().retry_after_s()) r.add("Retry-After", std::to_string(s));
  tx_.respond(stx, r);
  return false;
}

void Gateway::handle_invite(uint64_t stx, const Message& req, const Peer& from) {
  Side fs = side_of(from);
  Side ts = other(fs);
  Peer target;
  std::string ruri;
  int ui = -1;
  if (!admit_call(stx, req)) return;
  if (!route_new(stx, req, fs, &target, &ruri, &ui)) return;
  uint64_t id = next_call_++;
  Call& c = calls_[id];
  c.id = id;
  c.outbound = fs == Side::kOutside;
  c.created_unix_ms = unix_ms();
  Leg& a = c.leg[static_cast<int>(fs)];
  Leg& b = c.leg[static_cast<int>(ts)];
  init_legs(req, from, target, ruri, &a, &b);
  dialogs_[a.call_id + "|" + a.local_tag] = {id, fs};
  dialogs_[b.call_id + "|" + b.local_tag] = {id, ts};
  ++counters_["calls_started"];
  emit(1, id, sip::uri_of(b.remote_hdr), from.str(), c.outbound ? "outbound" : "inbound");

  Message m = new_request(c, ts, "INVITE");
  m.uri = ruri;
  m.set("Max-Forwards", std::to_string(req.max_forwards < 0 ? 69 : req.max_forwards - 1));
  copy_headers(req, &m, ts == Side::kOutside);
  if (!c.outbound) {
    m.remove("Authorization");
    m.remove("Proxy-Authorization");
  }
  if (const std::string* rp = req.get("Replaces")) m.add("Replaces", map_replaces(*rp, ts));
  // RFC 4028: a caller that asked for no session timer gets one all the
  // same, on the callee's leg and refreshed by the callee, so that a dialog
  // whose far end vanished still ends (see session_timer_refreshed).
  uint32_t se = cfg_.timers().session_expires_s();
  if (se && !req.get("Session-Expires")) {
    ask_session_timer(&m, se);
    c.st_imposed = true;
  }
  begin_invite(c, stx, req, fs, true);
  c.initial_stx = stx;
  stx_call_[stx] = id;
  if (c.offer_in_invite) {
    std::string body;
    int code = 488;
    if (!rewrite_sdp(c, fs, true, req.body, &body, &code)) {
      reply(stx, req, code, code == 503 ? "Service Unavailable" : "Not Acceptable Here", a.local_tag);
      end_call(id, "sdp-rejected", false, false);
      return;
    }
    set_sdp(&m, std::move(body));
  } else if (!req.body.empty()) {
    copy_body(req, &m);
  }
  uint32_t timeout = cfg_.timers().invite_timeout_s();
  c.invite_timer = timers_->after(int64_t{timeout} * 1000, [this, id] {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    Call& cc = it->second;
    cc.invite_timer = 0;
    if (cc.state != CallState::kCalling && cc.state != CallState::kEarly) return;
    ++counters_["invite_timeouts"];
    tx_.respond(cc.caller_stx, sip::make_response(cc.caller_invite, 408, "Request Timeout",
                                                  cc.leg[static_cast<int>(cc.caller)].local_tag));
    cc.state = CallState::kTerminating;
    cc.end_reason = "invite-timeout";
    if (!tx_.cancel(cc.callee_ctx)) end_call(id, "invite-timeout", false, false);
  });
  if (c.outbound) {
    c.upstream = ui;
    c.tried = {ui};
  }
  send_invite(c, ts, std::move(m), target);
  if (c.outbound) arm_failover(c);
}

// RFC 3263 4.3 in spirit: an upstream that does not answer a new call at all
// is skipped for the next one. Waiting for Timer B (32 s) would leave the
// caller ringing into nothing, so a silent upstream gets failover_ms.
void Gateway::arm_failover(Call& c) {
  timers_->cancel(c.failover_timer);
  c.failover_timer = 0;
  if (upstreams_.size() < 2 || c.tried.size() >= upstreams_.size()) return;
  uint64_t id = c.id;
  c.failover_timer = timers_->after(cfg_.timers().failover_ms(), [this, id] {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    it->second.failover_timer = 0;
    fail_over(it->second, false);
  });
}

// Sends the call's INVITE to the next untried upstream. `ended`: its
// transaction already failed (timeout, transport error); else it is still
// waiting and is dropped. False (nothing done) when the call is past the
// point of no return or no upstream is left.
void Gateway::mark_failed_over(int dead_index, int next, const char* why, const std::string& what) {
  UpstreamState& dead = upstreams_[dead_index];
  fprintf(stderr, "sluice-controlplane: upstream %s:%u: %s; %s goes to %s:%u\n",
          dead.spec.host().c_str(), dead.peer.port, why, what.c_str(),
          upstreams_[next].spec.host().c_str(), upstreams_[next].peer.port);
  for (uint32_t i = dead.failures; i < cfg_.monitor().failures_down(); ++i)
    upstream_result(dead_index, false, -1);  // down now; OPTIONS brings it back
  ++counters_["upstream_failovers"];
}

void Gateway::send_upstream(std::shared_ptr<UpstreamRequest> r, int upstream, const Peer& to) {
  r->upstream = upstream;
  r->tried.push_back(upstream);
  r->heard = false;
  r->sent_ms = now_ms();
  std::weak_ptr<UpstreamRequest> weak = r;
  uint64_t ctx = tx_.request(r->build(to), to, [this, r, upstream](const Message& resp, bool local) {
    if (r->upstream != upstream || r->finished) return;  // an attempt we moved on from
    if (!local && !r->heard) {
      r->heard = true;
      timers_->cancel(r->timer);
      r->timer = 0;
    }
    if (resp.status < 200) return;
    if (local && !r->heard && next_upstream(r, "request failed")) return;
    timers_->cancel(r->timer);
    r->timer = 0;
    r->finished = true;
    r->done(resp, local, upstream, now_ms() - r->sent_ms);
  });
  // A send that failed at once has already moved on (or finished).
  if (r->upstream != upstream || r->finished) return;
  r->ctx = ctx;
  if (upstream < 0 || upstreams_.size() < 2 || r->tried.size() >= upstreams_.size()) return;
  // The timer holds the request weakly: the transaction's callback owns it.
  r->timer = timers_->after(cfg_.timers().failover_ms(), [this, weak] {
    std::shared_ptr<UpstreamRequest> req = weak.lock();
    if (!req) return;
    req->timer = 0;
    if (!req->heard) next_upstream(req, "no answer");
  });
}

// Silent ("no answer"): the attempt is dropped only when there is somewhere
// else to go and it has heard nothing; otherwise its own timeout decides.
bool Gateway::next_upstream(const std::shared_ptr<UpstreamRequest>& r, const char* why) {
  if (r->upstream < 0) return false;  // toward a phone: there is no other
  int next = -1;
  Peer target = upstream_peer(&next, &r->tried);
  if (next < 0 || target.listener < 0) return false;
  if (std::string_view(why) == "no answer" && !tx_.abandon(r->ctx)) return false;
  mark_failed_over(r->upstream, next, why, r->what);
  send_upstream(r, next, target);
  return true;
}

bool Gateway::fail_over(Call& c, bool ended) {
  if (!c.outbound || !c.inv_initial || c.state != CallState::kCalling || c.upstream < 0 ||
      c.callee_invite.method.empty())
    return false;
  int next = -1;
  Peer target = upstream_peer(&next, &c.tried);
  if (next < 0 || target.listener < 0) return false;
  // Only a transaction that heard nothing can be dropped (a provisional
  // means the upstream is alive and owns the call now).
  if (!ended && !tx_.abandon(c.callee_ctx)) return false;
  mark_failed_over(c.upstream, next, ended ? "request failed" : "no answer",
                   "call " + std::to_string(c.id));
  Side ts = other(c.caller);
  Leg& b = c.leg[static_cast<int>(ts)];
  b.peer = target;
  b.listener = target.listener;
  b.contact = "<" + our_uri(user_of(c.leg[static_cast<int>(c.caller)].remote_hdr), target.listener) + ">";
  Message m = c.callee_invite;
  m.remove("Via");
  m.prepend("Via", via(target.listener, sip::new_branch()));
  m.set("Contact", b.contact);
  c.upstream = next;
  c.tried.push_back(next);
  send_invite(c, ts, std::move(m), target);
  arm_failover(c);
  return true;
}

void Gateway::send_invite(Call& c, Side to, Message m, const Peer& target) {
  uint64_t id = c.id;
  c.inv_active = true;
  c.inv_cseq_out = c.leg[static_cast<int>(to)].local_cseq;
  c.waiting_ack = false;
  c.ack_bytes.clear();
  if (c.inv_initial && c.outbound) c.callee_invite = m;
  c.callee_ctx = tx_.request(m, target, [this, id](const Message& r, bool local) {
    invite_response(id, r, local);
  });
}

void Gateway::invite_response(uint64_t id, const Message& resp, bool local) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Call& c = it->second;
  Side fs = c.caller, ts = other(c.caller);
  Leg& a = c.leg[static_cast<int>(fs)];
  Leg& b = c.leg[static_cast<int>(ts)];
  if (c.failover_timer) {  // the upstream answered something
    timers_->cancel(c.failover_timer);
    c.failover_timer = 0;
  }
  // An upstream that answered owns the call: no failover, no copy to keep.
  if (!local && !c.callee_invite.method.empty()) c.callee_invite = Message{};
  if (resp.status == 100) return;
  if (c.inv_initial && c.outbound && local) {
    // Timeout or transport error (connection refused): the next upstream,
    // if there is one; else the failure counts against this one.
    if (c.state == CallState::kCalling && fail_over(c, true)) return;
    for (size_t i = 0; i < upstreams_.size(); ++i)
      if (upstreams_[i].peer.same_address(b.peer)) upstream_result(static_cast<int>(i), false, -1);
  }
  bool ok2xx = resp.status >= 200 && resp.status < 300;
  if (c.state == CallState::kTerminating) {
    // Cancelled (or timed out) while the callee was still deciding.
    if (ok2xx) {
      if (!resp.to_tag.empty()) {
        b.remote_tag = resp.to_tag;
        if (resp.get("To")) b.remote_hdr = resp.value("To");
        b.remote_target = resp.get("Contact") ? sip::uri_of(*resp.get("Contact")) : b.remote_target;
      }
      Message ack = new_request(c, ts, "ACK");
      ack.set("CSeq", std::to_string(c.inv_cseq_out) + " ACK");
      tx_.send_ack(ack, b.peer);
      end_call(id, c.end_reason.empty() ? "cancelled" : c.end_reason, false, true);
    } else if (resp.status >= 300) {
      end_call(id, c.end_reason.empty() ? "cancelled" : c.end_reason, false, false);
    }
    return;
  }
  if (ok2xx && c.waiting_ack == false && !c.ack_bytes.empty()) {
    transport_->send(c.ack_peer, c.ack_bytes);  // a retransmitted 2xx: ACK again
    return;
  }
  if (ok2xx && c.waiting_ack) return;  // still waiting for the caller's ACK
  if (!resp.to_tag.empty() && resp.status > 100) {
    b.remote_tag = resp.to_tag;
    if (const std::string* t = resp.get("To")) b.remote_hdr = *t;
    if (c.inv_initial) {
      if (const std::string* ct = resp.get("Contact")) b.remote_target = sip::uri_of(*ct);
      auto rr = resp.all("Record-Route");
      std::reverse(rr.begin(), rr.end());
      b.route_set = rr;
    }
  }
  Message r = sip::make_response(c.caller_invite, resp.status, resp.reason, a.local_tag);
  copy_headers(resp, &r, c.caller == Side::kOutside);
  if (c.inv_initial && c.st_imposed) strip_session_timer(&r);  // the caller asked for none
  if (resp.status > 100 && resp.status < 300) r.add("Contact", a.contact);
  bool offer = !c.offer_in_invite;  // an offerless INVITE gets the offer here
  if (has_sdp(resp) && resp.status < 300 && offer && !c.early_offer.empty()) {
    set_sdp(&r, std::string(c.early_offer));  // the offer once more, as first sent
  } else if (has_sdp(resp) && resp.status < 300) {
    std::string body;
    int code = 488;
    if (rewrite_sdp(c, ts, offer, resp.body, &body, &code)) {
      if (offer && resp.status < 200 && resp.get("RSeq")) {  // reliable: PRACK answers
        c.early_offer = body;
        c.early_offer_open = true;
      }
      set_sdp(&r, std::move(body));
    } else {
      ++counters_["bad_answers"];
    }
    if (!offer && (resp.status == 183 || ok2xx)) push_flows(c);
  } else if (!resp.body.empty()) {
    copy_body(resp, &r);
  }
  if (resp.status < 200) {
    if (!resp.to_tag.empty() && c.inv_initial) c.state = CallState::kEarly;
    tx_.respond(c.caller_stx, r);
    return;
  }
  c.inv_active = false;
  if (ok2xx) {
    if (c.inv_initial) {
      c.state = CallState::kConfirmed;
      c.answered_ms = now_ms();
      timers_->cancel(c.invite_timer);
      c.invite_timer = 0;
      ++counters_["calls_answered"];
      emit(2, id, sip::uri_of(b.remote_hdr), b.peer.str(), "");
      if (c.outbound)
        for (size_t i = 0; i < upstreams_.size(); ++i)
          if (upstreams_[i].peer.same_address(b.peer)) upstream_result(static_cast<int>(i), true, -1);
      c.callee_update = has_option_tag(resp, "Allow", "update");
      if (c.st_imposed)
        take_timer_answer(c, resp, ts);
      else
        c.session_expires_s = parse_u32(sip::uri_of(resp.value("Session-Expires")), 0);
      arm_session_timer(c);
    } else {
      ++c.reinvites;
      emit(12, id, "", "", c.on_hold ? "hold" : "active");
      session_timer_refreshed(c, c.caller, c.caller_invite, resp, &r);
    }
    journal_call(c);
    c.waiting_ack = true;
    c.saved_streams.clear();
    tx_.respond(c.caller_stx, r);
    return;
  }
  // A failure.
  if (c.inv_initial) {
    if (c.outbound) auth_result(c.caller_invite, resp.status, a.peer);
    tx_.respond(c.caller_stx, r);
    ++counters_["calls_failed"];
    end_call(id, "rejected-" + std::to_string(resp.status), false, false);
    return;
  }
  // A re-INVITE failed: the session stays as it was, unless the other side
  // no longer has the dialog or did not answer at all (RFC 5057 5.1: 481 and
  // 408 end it), as when a session refresh finds the far end gone.
  if (!c.saved_streams.empty()) c.streams = c.saved_streams;
  c.saved_streams.clear();
  tx_.respond(c.caller_stx, r);
  if (resp.status == 481 || resp.status == 408) {
    ++counters_["reinvite_dialog_gone"];
    end_call(id, "reinvite-" + std::to_string(resp.status), c.caller == Side::kOutside,
             c.caller == Side::kInside);
  }
}

void Gateway::on_ack(const Message& ack, const Peer& from) {
  (void)from;
  auto d = dialogs_.find(ack.call_id + "|" + ack.to_tag);
  if (d == dialogs_.end()) return;
  auto it = calls_.find(d->second.first);
  if (it == calls_.end()) return;
  Call& c = it->second;
  if (d->second.second != c.caller || !c.waiting_ack) return;
  c.waiting_ack = false;
  Side ts = other(c.caller);
  Message m = new_request(c, ts, "ACK");
  m.set("CSeq", std::to_string(c.inv_cseq_out) + " ACK");
  if (has_sdp(ack) && !c.offer_in_invite && !c.early_answered) {
    std::string body;
    int code = 488;
    if (rewrite_sdp(c, c.caller, false, ack.body, &body, &code)) {
      set_sdp(&m, std::move(body));
      push_flows(c);
      journal_call(c);
    }
  }
  // An offer in the INVITE: its answer, in the 2xx, pushed the flows.
  c.ack_peer = c.leg[static_cast<int>(ts)].peer;
  c.ack_bytes = m.serialize();
  tx_.send_ack(m, c.ack_peer);
  if (c.media_refused && !c.flows_in_dataplane && c.state == CallState::kConfirmed) end_media_refused(c);
}

void Gateway::on_cancel(uint64_t stx, const Message& cancel) {
  (void)cancel;
  auto s = stx_call_.find(stx);
  if (s == stx_call_.end()) return;
  auto it = calls_.find(s->second);
  if (it == calls_.end()) return;
  Call& c = it->second;
  if (c.state != CallState::kCalling && c.state != CallState::kEarly) return;
  ++counters_["calls_cancelled"];
  tx_.respond(stx, sip::make_response(c.caller_invite, 487, "Request Terminated",
                                      c.leg[static_cast<int>(c.caller)].local_tag));
  c.state = CallState::kTerminating;
  c.end_reason = std::string("cancel-") + side_name(c.caller);
  if (!tx_.cancel(c.callee_ctx)) end_call(c.id, c.end_reason, false, false);
}

void Gateway::on_ack_timeout(uint64_t stx) {
  auto s = stx_call_.find(stx);
  if (s == stx_call_.end()) return;
  ++counters_["ack_timeouts"];
  end_call(s->second, "no-ack", true, true);
}

void Gateway::session_timer_request(const Call& c, Side from, Message* m) const {
  if (!c.st_imposed) return;  // the UAs' own timer passes through as it is
  if (from == c.st_refresher) {
    strip_session_timer(m);  // a refresh; the other side runs no timer
  } else {
    // The refresher stays the refresher when the other side re-INVITEs.
    ask_session_timer(m, c.session_expires_s);
  }
}

void Gateway::session_timer_refreshed(Call& c, Side from, const Message& req, const Message& resp,
                                      Message* r) {
  if (!c.st_imposed) {
    uint32_t s = parse_u32(sip::uri_of(resp.value("Session-Expires")), 0);
    if (req.method == "INVITE" || s) c.session_expires_s = s;
  } else if (from == c.st_refresher) {
    // A refresh (or any re-INVITE or UPDATE) from the timer's side, answered
    // by the relay as the UAS of a timer it asked for (RFC 4028 9): the
    // interval it asks for, and the refresher it names. It refreshes unless
    // it asks the relay to (refresher=uas) or has no timer (no "timer" in
    // Supported); the relay takes that on when the side allows UPDATE.
    std::string se = req.value("Session-Expires");
    uint32_t s = parse_u32(sip::uri_of(se), 0);
    if (s) c.session_expires_s = s;
    bool timer = has_option_tag(req, "Supported", "timer") || has_option_tag(req, "Require", "timer");
    bool relay = !timer || lower(sip::param(se, "refresher")) == "uas";
    c.st_by_relay = relay;
    r->set("Session-Expires",
           std::to_string(c.session_expires_s) + (relay ? ";refresher=uas" : ";refresher=uac"));
    if (timer) add_option_tag(r, "Require", "timer");
    ++counters_["session_refreshes"];
  } else {
    // The other side's re-INVITE or UPDATE, in which the relay asked the
    // timer's side to refresh again (session_timer_request).
    strip_session_timer(r);
    take_timer_answer(c, resp, other(from));
  }
  arm_session_timer(c);
}

// The 2xx to a request in which the relay asked `callee` for a session timer
// with refresher=uas. Either the callee agrees, or it names the relay
// (refresher=uac, or no refresher: RFC 4028 7.2 leaves it to the UAC), and
// the relay then refreshes (send_refresh); or it answers without
// Session-Expires (it has no timer) and none runs.
void Gateway::take_timer_answer(Call& c, const Message& resp, Side callee) {
  std::string se = resp.value("Session-Expires");
  uint32_t s = parse_u32(sip::uri_of(se), 0);
  c.st_refresher = callee;
  c.session_expires_s = s;
  c.st_imposed = s != 0;
  c.st_by_relay = s && lower(sip::param(se, "refresher")) != "uas";
}

// The relay's own refresh on the callee's leg (RFC 4028 7.4), which the
// other side never sees: an UPDATE without a body where the callee allows
// UPDATE, else a re-INVITE carrying the SDP the relay settled with the
// callee, unchanged (same o= version: RFC 3264 8 makes it no change)
// (own_reinvite). Its 2xx re-arms the timer; 481 or 408 (the callee lost
// the dialog or is gone, RFC 5057) ends the call; 422 retries with the
// callee's Min-SE; 491 (another request under way) retries shortly. Any
// other answer still proves the dialog alive, so the timer is re-armed and
// counted (session_refresh_rejected).
void Gateway::send_refresh(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Call& c = it->second;
  c.refresh_timer = 0;
  if (!c.st_imposed || !c.st_by_relay || c.state != CallState::kConfirmed) return;
  if (c.inv_active || c.waiting_ack || c.own_inv) {
    // An INVITE is under way; a re-INVITE's 2xx refreshes the session. Look
    // again shortly in case it fails.
    c.refresh_timer = timers_->after(2000, [this, id] { send_refresh(id); });
    return;
  }
  Side to = c.st_refresher;
  const std::string& sdp = c.sdp_sent[static_cast<int>(to)];
  if (!c.callee_update && sdp.empty()) {
    // Nothing to refresh with (no SDP was ever settled on that leg): the
    // timer stops; the callee's own expiry will end the call.
    ++counters_["session_timer_refresher_refused"];
    c.st_imposed = c.st_by_relay = false;
    c.session_expires_s = 0;
    arm_session_timer(c);
    journal_call(c);
    return;
  }
  const bool invite = !c.callee_update;
  Message m = new_request(c, to, invite ? "INVITE" : "UPDATE");
  m.set("Session-Expires", std::to_string(c.session_expires_s) + ";refresher=uac");
  add_option_tag(&m, "Supported", "timer");
  ++counters_["session_refreshes_sent"];
  // The callee's formats as they stand: its answer may switch codecs.
  std::vector<std::vector<std::string>> before;
  for (const Stream& st : c.streams) before.push_back(st.side[static_cast<int>(to)].fmts);
  auto done = [this, id, to, before](Call& cc, const Message& resp, bool answered) {
    if (resp.status >= 200 && resp.status < 300) {
      if (answered) {
        ++counters_["session_refresh_answers_taken"];
        relay_codec_change(cc, to, resp.body, before);
      }
      std::string se = resp.value("Session-Expires");
      uint32_t s = parse_u32(sip::uri_of(se), 0);
      if (s) cc.session_expires_s = s;
      // The callee may take the refreshes over (refresher=uas in the 2xx).
      if (s && lower(sip::param(se, "refresher")) == "uas") cc.st_by_relay = false;
      arm_session_timer(cc);
      journal_call(cc);
    } else if (resp.status == 481 || resp.status == 408) {
      ++counters_["session_refresh_dialog_gone"];
      end_call(id, "session-refresh-" + std::to_string(resp.status), true, true);
    } else if (resp.status == 422) {
      uint32_t min_se = parse_u32(sip::uri_of(resp.value("Min-SE")), 0);
      if (min_se > cc.session_expires_s) {
        cc.session_expires_s = min_se;
        send_refresh(id);
      } else {
        ++counters_["session_refresh_rejected"];
        arm_session_timer(cc);
      }
    } else if (resp.status == 491) {
      cc.refresh_timer = timers_->after(2000, [this, id] { send_refresh(id); });
    } else {
      ++counters_["session_refresh_rejected"];
      arm_session_timer(cc);
    }
  };
  if (invite) {
    ++counters_["session_refresh_reinvites_sent"];
    own_reinvite(c, to, std::move(m), sdp, std::move(done));
    return;
  }
  tx_.request(m, c.leg[static_cast<int>(to)].peer, [this, id, done](const Message& resp, bool) {
    if (resp.status < 200) return;
    auto it = calls_.find(id);
    if (it != calls_.end()) done(it->second, resp, false);
  });
}

// The relay's own re-INVITE: the SDP it offers is one it settled with the
// leg before (perhaps with streams removed), so the keys in it are offered
// again, for the answer's to be matched against (rewrite_sdp). Every 2xx is
// ACKed, retransmissions too (our ACK may have been lost); the first
// settles the offer with the leg and its answer is taken (take_own_answer;
// `done` learns whether it was). The leg's other side never sees any of it.
void Gateway::own_reinvite(Call& c, Side to, Message m, const std::string& sdp,
                           std::function<void(Call&, const Message&, bool)> done) {
  const int s = static_cast<int>(to);
  sdp::Session ses;
  if (sdp::parse(sdp, &ses) == sdp::Error::kNone) {
    for (size_t i = 0; i < ses.media.size() && i < c.streams.size(); ++i) {
      std::vector<sdp::Crypto>& offered = c.streams[i].side[s].keys.offered;
      offered.clear();
      for (const sdp::Line& l : ses.media[i].lines) {
        sdp::Crypto k;
        if (l.type == 'a' && l.value.rfind("crypto:", 0) == 0 &&
            sdp::parse_crypto(l.value.substr(7), &k))
          offered.push_back(k);
      }
    }
  }
  set_sdp(&m, sdp);
  c.own_inv |= static_cast<uint8_t>(1u << s);
  const uint32_t cseq = c.leg[s].local_cseq;
  const uint64_t id = c.id;
  tx_.request(m, c.leg[s].peer, [this, id, to, s, cseq, sdp, done](const Message& resp, bool) {
    if (resp.status < 200) return;
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    Call& cc = it->second;
    bool answered = false;
    if (resp.status < 300) {
      Message ack = new_request(cc, to, "ACK");
      ack.set("CSeq", std::to_string(cseq) + " ACK");
      tx_.send_ack(ack, cc.leg[s].peer);
      if (!(cc.own_inv >> s & 1)) return;  // a retransmitted 2xx
      cc.sdp_sent[s] = sdp;
      answered = has_sdp(resp) && take_own_answer(cc, to, resp.body);
    }
    cc.own_inv &= static_cast<uint8_t>(~(1u << s));
    done(cc, resp, answered);
  });
}

// The leg's answer to the relay's own re-INVITE. A refresh changes nothing
// on our side, but the callee may still move its media (another media
// server, a new address) or change its keys in the answer: its stream state
// and the flows follow. The other side is not told: its relay address and
// keys stay as they are, so the SDP settled with it is kept.
bool Gateway::take_own_answer(Call& c, Side callee, const std::string& body) {
  std::string unused;
  int code = 0;
  if (!rewrite_sdp(c, callee, false, body, &unused, &code, /*settle=*/false)) {
    ++counters_["bad_answers"];
    return false;
  }
  push_flows(c);  // unchanged flows stay as they are on the dataplane
  return true;
}

// An answer to an unchanged offer may still pick other formats (RFC 3264
// 8.3.2), so a callee may switch codecs in its answer to the relay's
// refresh, which the other side never saw. The other side is offered the
// callee's answer as it now stands (its formats, the relay's address and
// keys as before), in a re-INVITE of the relay's own, and its answer is
// taken. One that fails (or one that cannot go out now, another INVITE
// being under way) leaves the other side with the formats it had
// (codec_changes_not_relayed); the relay forwards whatever payload the
// callee sends either way.
void Gateway::relay_codec_change(Call& c, Side callee, const std::string& body,
                                 const std::vector<std::vector<std::string>>& before) {
  bool changed = false;
  for (size_t i = 0; i < c.streams.size() && i < before.size(); ++i) {
    const Stream& st = c.streams[i];
    if (!st.disabled && !before[i].empty() && before[i] != st.side[static_cast<int>(callee)].fmts)
      changed = true;
  }
  if (!changed) return;
  ++counters_["codec_changes_in_refresh"];
  const Side os = other(callee);
  std::string offer;
  int code = 0;
  if (c.inv_active || c.waiting_ack || c.own_inv ||
      !rewrite_sdp(c, callee, true, body, &offer, &code, /*settle=*/false)) {
    ++counters_["codec_changes_not_relayed"];
    return;
  }
  own_reinvite(c, os, new_request(c, os, "INVITE"), offer,
               [this](Call& cc, const Message& resp, bool) {
                 if (resp.status >= 200 && resp.status < 300) {
                   ++counters_["codec_changes_relayed"];
                   journal_call(cc);
                 } else {
                   ++counters_["codec_changes_not_relayed"];
                 }
               });
}

// Streams the dataplane refused after their answer had reached both sides
// (batch_refused): each side gets a re-INVITE with the SDP the relay settled
// with it, those streams removed (port 0, RFC 3264 8.2), so that neither
// keeps sending media the relay drops or waits for media that never comes.
// It waits for the call's INVITE transactions (RFC 3261 14.1); a leg that
// answers 491 is tried again, up to 5 times; any other failure leaves the
// leg as it is (counted). A later offer that asks for the streams again
// gets them tried again (rewrite_sdp).
void Gateway::turn_off_refused(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Call& c = it->second;
  c.off_timer = 0;
  if (c.state == CallState::kTerminating) return;
  uint32_t refused = 0;
  for (size_t i = 0; i < c.streams.size() && i < 32; ++i)
    if (c.streams[i].refused) refused |= 1u << i;
  if (!refused) return;
  if (c.state != CallState::kConfirmed || c.inv_active || c.waiting_ack || c.own_inv) {
    c.off_timer = timers_->after(500, [this, id] { turn_off_refused(id); });
    return;
  }
  for (int s = 0; s < 2; ++s) {
    sdp::Session ses;
    if (c.sdp_sent[s].empty() || sdp::parse(c.sdp_sent[s], &ses) != sdp::Error::kNone) continue;
    uint32_t off = 0;
    for (size_t i = 0; i < ses.media.size() && i < 32; ++i)
      if ((refused >> i & 1) && ses.media[i].port != 0) off |= 1u << i;
    if (!off) continue;  // this side has them off already
    const Side to = static_cast<Side>(s);
    std::string sdp = sdp::without_streams(ses, off, ++sdp_version_);
    ++counters_["refused_streams_off_sent"];
    own_reinvite(c, to, new_request(c, to, "INVITE"), sdp,
                 [this, id](Call& cc, const Message& resp, bool) {
                   if (resp.status >= 200 && resp.status < 300) {
                     ++counters_["refused_streams_off"];
                     journal_call(cc);
                   } else if (resp.status == 491 && cc.off_retries < 5) {
                     ++cc.off_retries;
                     if (!cc.off_timer)
                       cc.off_timer = timers_->after(1000, [this, id] { turn_off_refused(id); });
                   } else {
                     ++counters_["refused_streams_off_failed"];
                   }
                 });
  }
}

void Gateway::arm_session_timer(Call& c) {
  timers_->cancel(c.session_timer);
  timers_->cancel(c.refresh_timer);
  c.session_timer = c.refresh_timer = 0;
  if (!c.session_expires_s) return;
  uint64_t id = c.id;
  // The refresher refreshes at half the interval (RFC 4028 10).
  if (c.st_imposed && c.st_by_relay)
    c.refresh_timer = timers_->after(int64_t{c.session_expires_s} * 500, [this, id] { send_refresh(id); });
  // RFC 4028 10: without a refresh the session ends at the interval (less
  // a margin of a third, at most 32 s, as the RFC suggests for the BYE).
  int64_t ms = int64_t{c.session_expires_s} * 1000;
  ms -= std::min<int64_t>(32000, ms / 3);
  c.session_timer = timers_->after(ms, [this, id] {
    auto it = calls_.find(id);
    if (it == calls_.end()) return;
    it->second.session_timer = 0;
    ++counters_["session_timer_expired"];
    end_call(id, "session-timer", true, true);
  });
}

// ---------------------------------------------------------------------------
// Calls: in-dialog requests

void Gateway::handle_in_dialog(uint64_t stx, const Message& req, const Peer& from, Call& c,
                               Side fs) {
  Leg& l = c.leg[static_cast<int>(fs)];
  if (!accept_cseq(stx, req, l)) return;
  // The phone may have moved (NAT rebinding, a new TCP connection).
  if (fs == Side::kOutside) l.peer = from;
  if (const std::string* ct = req.get("Contact"))
    if (req.method == "INVITE" || req.method == "UPDATE") l.remote_target = sip::uri_of(*ct);
  if (req.method == "BYE") {
    reply(stx, req, 200, "OK", l.local_tag);
    end_call(c.id, std::string("bye-") + side_name(fs), fs == Side::kInside, fs == Side::kOutside);
    return;
  }
  if (req.method == "INVITE") {
    if (c.inv_active || c.waiting_ack || c.own_inv) {
      reply(stx, req, 491, "Request Pending", l.local_tag);
      return;
    }
    Side ts = other(fs);
    Message m = new_request(c, ts, "INVITE");
    copy_headers(req, &m, ts == Side::kOutside);
    begin_invite(c, stx, req, fs, false);
    session_timer_request(c, fs, &m);
    c.saved_streams = c.streams;
    if (c.offer_in_invite) {
      std::string body;
      int code = 488;
      if (!rewrite_sdp(c, fs, true, req.body, &body, &code)) {
        c.streams = c.saved_streams;
        reply(stx, req, code, "Not Acceptable Here", l.local_tag);
        return;
      }
      set_sdp(&m, std::move(body));
    }
    send_invite(c, ts, std::move(m), c.leg[static_cast<int>(ts)].peer);
    return;
  }
  relay_request(c, stx, req, fs);
}

void Gateway::begin_invite(Call& c, uint64_t stx, const Message& req, Side fs, bool initial) {
  c.inv_initial = initial;
  c.caller = fs;
  c.caller_stx = stx;
  c.caller_invite = req;
  c.offer_in_invite = has_sdp(req);
  c.early_offer.clear();
  c.early_offer_open = c.early_answered = false;
}

void Gateway::relay_request(Call& c, uint64_t stx, const Message& req, Side fs) {
  Side ts = other(fs);
  Message m = new_request(c, ts, req.method);
  const Leg& out = c.leg[static_cast<int>(ts)];
  if (c.journaled && out.local_cseq - out.journaled_cseq >= kCseqMargin / 2) journal_call(c);
  copy_headers(req, &m, ts == Side::kOutside);
  if (req.method == "PRACK") {
    // RAck: rseq cseq method; the CSeq is the INVITE's on the other leg.
    if (const std::string* ra = req.get("RAck")) {
      std::string rseq = ra->substr(0, ra->find(' '));
      m.set("RAck", rseq + " " + std::to_string(c.inv_cseq_out) + " INVITE");
    }
  }
  if (const std::string* rt = req.get("Refer-To")) m.set("Refer-To", map_refer_to(*rt, ts));
  if (req.method == "UPDATE") session_timer_request(c, fs, &m);
  // SDP in a PRACK answers the offer of a reliable provisional when one is
  // open; otherwise SDP in an UPDATE or PRACK is a new offer, answered in
  // its 2xx (RFC 3262 5, RFC 3311 5).
  bool prack_answer = req.method == "PRACK" && has_sdp(req) && c.early_offer_open && fs == c.caller;
  bool offer = (req.method == "UPDATE" || req.method == "PRACK") && has_sdp(req) && !prack_answer;
  if (offer && c.own_inv) {  // the relay's own offer is under way (RFC 3311 5.2)
    reply(stx, req, 491, "Request Pending", c.leg[static_cast<int>(fs)].local_tag);
    return;
  }
  std::vector<Stream> saved;
  if (prack_answer) {
    std::string body;
    int code = 488;
    if (!rewrite_sdp(c, fs, false, req.body, &body, &code)) {
      ++counters_["bad_answers"];
      reply(stx, req, code, "Not Acceptable Here", c.leg[static_cast<int>(fs)].local_tag);
      return;
    }
    set_sdp(&m, std::move(body));
    c.early_offer_open = false;
    c.early_answered = true;
    push_flows(c);
    ++counters_["prack_answers"];
  } else if (offer) {
    saved = c.streams;
    std::string body;
    int code = 488;
    if (!rewrite_sdp(c, fs, true, req.body, &body, &code)) {
      c.streams = saved;
      reply(stx, req, code, "Not Acceptable Here", c.leg[static_cast<int>(fs)].local_tag);
      return;
    }
    set_sdp(&m, std::move(body));
  } else if (!req.body.empty()) {
    copy_body(req, &m);
  }
  uint64_t id = c.id;
  Message orig = req;
  tx_.request(m, c.leg[static_cast<int>(ts)].peer,
              [this, id, stx, orig, fs, ts, offer, saved](const Message& resp, bool local) {
                (void)local;
                auto it = calls_.find(id);
                if (it == calls_.end()) {
                  if (resp.status >= 200) {
                    Message r = sip::make_response(orig, resp.status, resp.reason);
                    tx_.respond(stx, r);
                  }
                  return;
                }
                Call& cc = it->second;
                Message r = sip::make_response(orig, resp.status, resp.reason,
                                               cc.leg[static_cast<int>(fs)].local_tag);
                copy_headers(resp, &r, fs == Side::kOutside);
                if (offer && resp.status >= 200 && resp.status < 300 && has_sdp(resp)) {
                  std::string body;
                  int code = 488;
                  if (rewrite_sdp(cc, ts, false, resp.body, &body, &code)) {
                    set_sdp(&r, std::move(body));
                    push_flows(cc);
                    journal_call(cc);
                    emit(12, id, "", "", cc.on_hold ? "hold" : "active");
                  }
                } else if (offer && resp.status >= 300) {
                  cc.streams = saved;
                } else if (!resp.body.empty()) {
                  copy_body(resp, &r);
                }
                if (resp.status >= 200 && resp.status < 300 && orig.method == "UPDATE")
                  session_timer_refreshed(cc, fs, orig, resp, &r);
                tx_.respond(stx, r);
              });
}

// ---------------------------------------------------------------------------
// Teardown and media events

void Gateway::end_call(uint64_t id, const std::string& reason, bool bye_outside, bool bye_inside) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Call& c = it->second;
  bool bye[2] = {bye_outside, bye_inside};
  for (int s = 0; s < 2; ++s) {
    Leg& l = c.leg[s];
    if (!bye[s] || l.remote_tag.empty() || l.remote_target.empty()) continue;
    if (c.state != CallState::kConfirmed && !(s == static_cast<int>(other(c.caller)))) continue;
    Message m = new_request(c, static_cast<Side>(s), "BYE");
    m.add("Reason", "SIP;cause=200;text=\"" + reason + "\"");
    tx_.request(m, l.peer, [](const Message&, bool) {});
  }
  remove_flows(c);
  for (const Stream& st : c.streams) {
    if (st.side[0].relay_port) ports_[0]->give(st.side[0].relay_port);
    if (st.side[1].relay_port) ports_[1]->give(st.side[1].relay_port);
  }
  timers_->cancel(c.invite_timer);
  timers_->cancel(c.session_timer);
  timers_->cancel(c.refresh_timer);
  timers_->cancel(c.failover_timer);
  timers_->cancel(c.off_timer);
  for (int s = 0; s < 2; ++s) dialogs_.erase(c.leg[s].call_id + "|" + c.leg[s].local_tag);
  stx_call_.erase(c.initial_stx);
  ++counters_["calls_ended"];
  journal_end(c);
  emit(3, id, "", "", reason);
  calls_.erase(it);
}

void Gateway::on_media_timeout(uint64_t cookie, const std::string& flow) {
  auto it = calls_.find(cookie);
  if (it == calls_.end()) return;
  Call& c = it->second;
  emit(11, cookie, "", flow, "");
  if (c.state != CallState::kConfirmed || c.on_hold) return;
  ++counters_["media_timeouts"];
  end_call(cookie, "media-timeout", true, true);
}

void Gateway::flow_fates(const std::vector<BatchFate>& fates) {
  for (const BatchFate& f : fates) {
    if (f.fate != FlowFate::kTaken) ++counters_["flow_push_failures"];
    if (f.fate == FlowFate::kRefused) ++counters_["flow_batches_refused"];
    auto it = calls_.find(f.call);
    if (it == calls_.end()) continue;
    Call& c = it->second;
    uint8_t streams = 0;
    if (!c.batches.empty()) {
      streams = c.batches.front();
      c.batches.pop_front();
    }
    if (f.fate == FlowFate::kTaken) {
      for (size_t i = 0; i < c.streams.size() && i < 8; ++i)
        if (streams >> i & 1) c.streams[i].in_dataplane = true;
      c.flows_in_dataplane = true;
      c.media_refused = false;
    } else if (f.fate == FlowFate::kRefused) {
      batch_refused(c, streams);
    }
  }
}

void Gateway::batch_refused(Call& c, uint8_t streams) {
  if (c.state == CallState::kTerminating) return;
  // The streams the batch added: the room they asked for (or a flow of
  // theirs) is what the dataplane refused.
  uint8_t added = 0;
  for (size_t i = 0; i < c.streams.size() && i < 8; ++i)
    if ((streams >> i & 1) && !c.streams[i].in_dataplane && !c.streams[i].refused)
      added |= static_cast<uint8_t>(1u << i);
  int keep = -1;
  if (c.flows_in_dataplane) {
    // A change refused: left out, the call's other streams take the rest.
    ++counters_["flow_changes_refused"];
  } else if (__builtin_popcount(added) > 1) {
    // A call's first batch with several streams: the call goes on with its
    // first audio stream (else its first stream) alone, the rest left out.
    for (size_t i = 0; i < c.streams.size() && i < 8 && keep < 0; ++i)
      if ((added >> i & 1) && c.streams[i].type == "audio") keep = static_cast<int>(i);
    if (keep < 0) keep = __builtin_ctz(added);
    added &= static_cast<uint8_t>(~(1u << keep));
    ++counters_["flow_setups_narrowed"];
  } else {
    c.media_refused = true;
    // A BYE to the caller waits for its ACK (RFC 3261 15); an early call
    // waits for its answer, whose batch may yet be taken.
    if (c.state == CallState::kConfirmed && !c.waiting_ack) end_media_refused(c);
    return;
  }
  if (!added) {
    fprintf(stderr,
            "sluice-controlplane: call %llu: the dataplane refused its changed flows; it keeps "
            "the ones it had\n",
            static_cast<unsigned long long>(c.id));
    return;
  }
  for (size_t i = 0; i < c.streams.size() && i < 8; ++i)
    if (added >> i & 1) c.streams[i].refused = true;
  counters_["flow_streams_refused"] += __builtin_popcount(added);
  if (keep < 0)
    fprintf(stderr,
            "sluice-controlplane: call %llu: the dataplane refused the %d stream(s) its change "
            "added; they are left out, its other streams keep going\n",
            static_cast<unsigned long long>(c.id), __builtin_popcount(added));
  else
    fprintf(stderr,
            "sluice-controlplane: call %llu: the dataplane refused its %d streams; it goes on "
            "with its %s stream (%d) alone\n",
            static_cast<unsigned long long>(c.id), __builtin_popcount(added) + 1,
            c.streams[keep].type.c_str(), keep);
  push_flows(c);
  // so that a restarted control plane does not ask for them again
  if (c.journaled) journal_call(c);
  if (!c.off_timer) turn_off_refused(c.id);
}

void Gateway::end_media_refused(Call& c) {
  ++counters_["calls_ended_media_refused"];
  fprintf(stderr,
          "sluice-controlplane: call %llu: the dataplane holds no flows for it (refused); ending it "
          "on both legs\n",
          static_cast<unsigned long long>(c.id));
  end_call(c.id, "media-refused", true, true);
}

void Gateway::on_media_latched(uint64_t cookie, const std::string& flow, const std::string& peer) {
  if (!calls_.count(cookie)) return;
  emit(10, cookie, "", peer, flow);
}

// ---------------------------------------------------------------------------
// Introspection

std::map<std::string, uint64_t> Gateway::counters() const {
  std::map<std::string, uint64_t> out = counters_;
  const auto& t = tx_.counters();
  out["sip_retransmissions"] = t.retransmissions;
  out["sip_retransmissions_absorbed"] = t.absorbed;
  out["sip_transaction_timeouts"] = t.timeouts;
  out["sip_stray_responses"] = t.stray_responses;
  out["sip_transport_errors"] = t.transport_errors;
  const auto& n = transport_->counters();
  out["transport_rx_messages"] = n.rx_messages;
  out["transport_tx_messages"] = n.tx_messages;
  out["transport_parse_errors"] = n.parse_errors;
  out["transport_not_allowed"] = n.not_allowed;
  out["transport_oversized"] = n.oversized;
  out["transport_keepalives"] = n.keepalives;
  out["transport_tls_handshake_failures"] = n.tls_handshake_failures;
  out["transport_idle_closed"] = n.idle_closed;
  out["transport_send_failures"] = n.send_failures;
  out["tls_expiry_warnings"] = n.tls_expiry_warnings;
  out["sip_queue_delay_max_us"] = n.rx_delay_max_us;
  out["sip_queued_over_100ms"] = n.rx_delayed_over_100ms;
  if (journal_) {
    out["journal_bytes"] = journal_->bytes();
    out["journal_write_errors"] = journal_->write_errors();
    out["journal_compactions"] = journal_->compactions();
    out["journal_compaction_failures"] = journal_->compaction_failures();
    out["journal_compaction_max_us"] = journal_->compaction_max_us();
    out["journal_stall_max_us"] = journal_->stall_max_us();
  }
  std::string name;
  int64_t left = 0;
  if (transport_->tls_expiry(&name, &left))
    out["tls_certificate_days_left"] = left > 0 ? static_cast<uint64_t>(left / 86400) : 0;
  return out;
}

size_t Gateway::ports_in_use() const { return ports_[0]->used(); }
size_t Gateway::ports_free() const { return ports_[0]->free(); }

size_t Gateway::state_bytes() const {
  // An estimate from sizes and string capacities (the bench measures RSS).
  size_t n = 0;
  for (const auto& [t, b] : bindings_)
    n += sizeof(Binding) + 64 + b.aor.capacity() + b.user.capacity() + b.contact.capacity() +
         b.token.capacity() + b.user_agent.capacity() + b.listener.capacity();
  for (const auto& [id, s] : subs_) n += sizeof(Subscription) + 64 + s.event.capacity();
  for (const auto& [id, c] : calls_) {
    n += sizeof(Call) + 64 + c.caller_invite.body.size() + c.streams.size() * sizeof(Stream);
    for (const sip::Header& h : c.caller_invite.headers) n += h.name.capacity() + h.value.capacity() + 32;
  }
  return n;
}

}  // namespace sluice::cp
