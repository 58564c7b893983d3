// Signalling that is not a call but that teleworker phones rely on, relayed
// by the B2BUA:
// - event subscriptions (RFC 6665): a phone subscribes at the PBX to
//   message-summary (message waiting lamp), dialog (busy lamps), presence;
//   the subscription is two dialogs like a call's, without media;
// - out-of-dialog MESSAGE and PUBLISH both ways, and from the PBX unsolicited
//   NOTIFY (message waiting without a subscription) and OPTIONS aimed at a
//   registered phone.
// Each relayed request gets our own Call-ID, tags, Via and Contact on the
// far side, as calls do; the answer comes back mapped onto the sender's.
#include <algorithm>

#include "controlplane/gateway.h"
#include "controlplane/gateway_util.h"

namespace sluice::cp {

using sip::Message;
using sip::Peer;

namespace {

constexpr size_t kMaxSubscriptions = 200000;
constexpr uint32_t kDefaultExpires = 3600;  // a 2xx without Expires (RFC 6665 requires one)
constexpr uint32_t kGraceS = 32;             // for the final NOTIFY after expiry (64*T1)

// The part before the first ';', trimmed: "terminated;reason=timeout" ->
// "terminated".
std::string token_of(const std::string& v) {
  std::string t = v.substr(0, v.find(';'));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  while (!t.empty() && t.front() == ' ') t.erase(t.begin());
  return util::lower(t);
}

// The subscription time a 2xx to SUBSCRIBE grants: its Expires, else the
// request's, else the default.
uint32_t granted_expires(const Message& req, const Message& ok) {
  return util::parse_u32(ok.value("Expires"), util::parse_u32(req.value("Expires"), kDefaultExpires));
}

// The request as it goes on to the far side: the sender's headers and body
// relayed, with Max-Forwards counted down and, toward a phone, the PBX's
// credentials removed.
void relay_headers(const Message& req, bool to_outside, Message* m) {
  m->set("Max-Forwards", std::to_string(req.max_forwards < 0 ? 69 : req.max_forwards - 1));
  util::copy_headers(req, m, to_outside);
  if (to_outside) {
    m->remove("Authorization");
    m->remove("Proxy-Authorization");
  }
  if (!req.body.empty()) util::copy_body(req, m);
}

// The far side's answer mapped onto the request we received (from the
// outside when `to_outside`).
Message mapped_response(const Message& req, const Message& resp, const std::string& to_tag,
                        bool to_outside) {
  Message r = sip::make_response(req, resp.status, resp.reason, to_tag);
  util::copy_headers(resp, &r, to_outside);
  if (!resp.body.empty()) util::copy_body(resp, &r);
  return r;
}

}  // namespace

void Gateway::handle_subscribe(uint64_t stx, const Message& req, const Peer& from) {
  Side fs = side_of(from), ts = other(fs);
  std::string event = token_of(req.value("Event"));
  if (event.empty()) {
    reply(stx, req, 400, "Missing Event Header");  // RFC 6665 8.2.1
    return;
  }
  if (subs_.size() >= kMaxSubscriptions) {
    ++counters_["subscriptions_refused"];
    reply(stx, req, 503, "Service Unavailable");
    return;
  }
  Peer target;
  std::string ruri;
  int ui = -1;
  if (!route_new(stx, req, fs, &target, &ruri, &ui)) return;
  uint64_t id = next_sub_++;
  Subscription& s = subs_[id];
  s.id = id;
  s.event = event;
  s.subscriber = fs;
  s.created_unix_ms = util::unix_ms();
  Leg& a = s.leg[static_cast<int>(fs)];
  Leg& b = s.leg[static_cast<int>(ts)];
  init_legs(req, from, target, ruri, &a, &b);
  sub_dialogs_[a.call_id + "|" + a.local_tag] = {id, fs};
  sub_dialogs_[b.call_id + "|" + b.local_tag] = {id, ts};
  ++counters_["subscriptions_started"];

  auto up = std::make_shared<UpstreamRequest>();
  up->what = "SUBSCRIBE " + event + " " + req.uri;
  // Toward the upstream it fails over like a REGISTER: the far leg follows.
  up->build = [this, id, req, ruri, ts](const Peer& to) {
    Message m;
    auto it = subs_.find(id);
    if (it == subs_.end()) return m;  // cannot happen: it ends only on an answer
    Leg& b = it->second.leg[static_cast<int>(ts)];
    b.peer = to;
    b.listener = to.listener;
    b.contact = "<" + our_uri(util::user_of(it->second.leg[static_cast<int>(other(ts))].remote_hdr),
                              to.listener) + ">";
    m = new_request(b, "SUBSCRIBE");
    m.uri = ruri;
    relay_headers(req, ts == Side::kOutside, &m);
    return m;
  };
  Message orig = req;
  bool back_out = fs == Side::kOutside;
  up->done = [this, id, stx, orig, from, back_out](const Message& resp, bool local, int ui,
                                                  int64_t rtt) {
    if (ui >= 0) upstream_result(ui, !local, rtt);
    auto it = subs_.find(id);
    if (it == subs_.end()) {  // ended meanwhile (its NOTIFY said terminated)
      tx_.respond(stx, mapped_response(orig, resp, sip::random_token(10), back_out));
      return;
    }
    Subscription& s = it->second;
    Leg& a = s.leg[static_cast<int>(s.subscriber)];
    Leg& b = s.leg[static_cast<int>(other(s.subscriber))];
    Message r = mapped_response(orig, resp, a.local_tag, back_out);
    if (resp.status >= 300) {
      auth_result(orig, resp.status, from);
      tx_.respond(stx, r);
      if (!s.established) end_subscription(id, "rejected");
      return;
    }
    if (b.remote_tag.empty()) {  // not already set up by an early NOTIFY
      b.remote_tag = resp.to_tag;
      auto rr = resp.all("Record-Route");
      std::reverse(rr.begin(), rr.end());
      b.route_set = rr;
    }
    if (resp.to_tag == b.remote_tag) {
      b.remote_hdr = resp.value("To");
      if (const std::string* ct = resp.get("Contact")) b.remote_target = sip::uri_of(*ct);
    }
    s.established = true;
    r.add("Contact", a.contact);
    arm_sub_timer(s, granted_expires(orig, resp));
    tx_.respond(stx, r);
  };
  send_upstream(up, ui, target);
}

void Gateway::handle_sub_in_dialog(uint64_t stx, const Message& req, const Peer& from,
                                   Subscription& s, Side fs) {
  Leg& l = s.leg[static_cast<int>(fs)];
  bool notify = req.method == "NOTIFY" && fs != s.subscriber;
  if (!notify && !(req.method == "SUBSCRIBE" && fs == s.subscriber)) {
    reply(stx, req, 405, "Method Not Allowed", l.local_tag);
    return;
  }
  if (!accept_cseq(stx, req, l)) return;
  if (fs == Side::kOutside) l.peer = from;  // the phone may have moved
  if (notify && l.remote_tag.empty()) {
    // A NOTIFY that overtook the SUBSCRIBE's 2xx creates the dialog
    // (RFC 6665 4.1.2.4); we are its UAS, so the route set is as received.
    l.remote_tag = req.from_tag;
    l.remote_hdr = req.value("From");
    l.route_set = req.all("Record-Route");
  }
  if (notify && req.from_tag != l.remote_tag) {
    // A second notifier (a forked SUBSCRIBE): one subscription is relayed.
    reply(stx, req, 481, "Subscription Does Not Exist", l.local_tag);
    return;
  }
  if (const std::string* ct = req.get("Contact")) l.remote_target = sip::uri_of(*ct);
  Side ts = other(fs);
  Leg& o = s.leg[static_cast<int>(ts)];
  if (o.remote_tag.empty()) {  // cannot happen for NOTIFY (the subscriber's tag is known)
    reply(stx, req, 481, "Subscription Does Not Exist", l.local_tag);
    return;
  }
  Message m = new_request(o, req.method);
  relay_headers(req, ts == Side::kOutside, &m);
  if (s.journaled && o.local_cseq - o.journaled_cseq >= kCseqMargin / 2) journal_subscription(s);
  if (notify) {
    ++s.notifies;
    ++counters_["notifies_relayed"];
  }
  uint64_t id = s.id;
  Message orig = req;
  tx_.request(m, o.peer, [this, id, stx, orig, fs, notify](const Message& resp, bool local) {
    if (resp.status < 200) return;
    auto it = subs_.find(id);
    std::string tag = it == subs_.end() ? std::string() : it->second.leg[static_cast<int>(fs)].local_tag;
    Message r = mapped_response(orig, resp, tag, fs == Side::kOutside);
    if (it == subs_.end()) {
      tx_.respond(stx, r);
      return;
    }
    Subscription& s = it->second;
    bool ok = resp.status < 300;
    if (ok && !notify) r.add("Contact", s.leg[static_cast<int>(fs)].contact);
    tx_.respond(stx, r);
    if (resp.status == 481 || (local && !ok)) {
      end_subscription(id, "gone");  // the far end forgot it or cannot be reached
    } else if (notify && token_of(orig.value("Subscription-State")) == "terminated") {
      end_subscription(id, "terminated");
    } else if (ok && notify) {
      s.established = true;
    } else if (ok) {  // a refresh (Expires: 0 unsubscribes; the final NOTIFY follows)
      arm_sub_timer(s, granted_expires(orig, resp));
    }
  });
}

void Gateway::arm_sub_timer(Subscription& s, uint32_t seconds) {
  arm_sub_timer_ms(s, (int64_t{seconds} + kGraceS) * 1000);
  journal_subscription(s);
}

void Gateway::arm_sub_timer_ms(Subscription& s, int64_t ms) {
  timers_->cancel(s.timer);
  s.expires_at = now_ms() + ms;
  uint64_t id = s.id;
  s.timer = timers_->after(ms, [this, id] {
    auto it = subs_.find(id);
    if (it == subs_.end()) return;
    it->second.timer = 0;
    end_subscription(id, "expired");
  });
}

void Gateway::end_subscription(uint64_t id, const char* reason) {
  auto it = subs_.find(id);
  if (it == subs_.end()) return;
  Subscription& s = it->second;
  timers_->cancel(s.timer);
  journal_sub_end(s);
  for (const Leg& l : s.leg) sub_dialogs_.erase(l.call_id + "|" + l.local_tag);
  ++counters_[std::string("subscriptions_") + reason];
  subs_.erase(it);
}

void Gateway::relay_out_of_dialog(uint64_t stx, const Message& req, const Peer& from) {
  Side fs = side_of(from), ts = other(fs);
  Peer target;
  std::string ruri;
  int ui = -1;
  if (!route_new(stx, req, fs, &target, &ruri, &ui)) return;
  // A one-off leg: our Call-ID and From tag on the far side, nothing kept
  // after the answer. Toward the upstream it fails over like a REGISTER.
  ++counters_["relayed_" + util::lower(req.method)];
  auto r = std::make_shared<UpstreamRequest>();
  r->what = req.method + " " + req.uri;
  r->build = [this, req, from, ruri, ts](const Peer& to) {
    Leg a, b;
    init_legs(req, from, to, ruri, &a, &b);
    Message m = new_request(b, req.method);
    m.uri = ruri;
    m.set("CSeq", std::to_string(req.cseq) + " " + req.method);
    if (!req.get("Contact")) m.remove("Contact");
    relay_headers(req, ts == Side::kOutside, &m);
    return m;
  };
  r->done = [this, stx, req, from, fs](const Message& resp, bool local, int ui, int64_t rtt) {
    if (ui >= 0) upstream_result(ui, !local, rtt);
    auth_result(req, resp.status, from);
    tx_.respond(stx, mapped_response(req, resp, sip::random_token(10), fs == Side::kOutside));
  };
  send_upstream(r, ui, target);
}

}  // namespace sluice::cp
