#include "controlplane/sip/transaction.h"

#include <arpa/inet.h>

#include <algorithm>

namespace sluice::sip {

namespace {

bool rfc3261_branch(const std::string& b) { return b.rfind("z9hG4bK", 0) == 0 && b.size() > 7; }

// The server transaction key (RFC 3261 17.2.3): branch, sent-by and method,
// ACK matching the INVITE. Pre-3261 requests fall back to the dialog and
// CSeq identifiers plus the whole top Via.
std::string server_key(const Message& m, const std::string& method) {
  const std::string* via = m.get("Via");
  std::string v = via ? *via : std::string();
  if (rfc3261_branch(m.top_branch)) return m.top_branch + "|" + via_sent_by(v) + "|" + method;
  return "old|" + m.call_id + "|" + std::to_string(m.cseq) + "|" + m.from_tag + "|" + v + "|" +
         method;
}

std::string accepted_key(const Message& m) { return m.call_id + "|" + std::to_string(m.cseq); }

}  // namespace

const char* transport_name(Transport t) {
  switch (t) {
    case Transport::kUdp: return "UDP";
    case Transport::kTcp: return "TCP";
    case Transport::kTls: return "TLS";
  }
  return "UDP";
}

std::string ip_str(uint32_t ip) {
  in_addr a{htonl(ip)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

bool parse_ip(const std::string& s, uint32_t* ip) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *ip = ntohl(a.s_addr);
  return true;
}

std::string Peer::str() const {
  std::string t = transport_name(transport);
  for (char& c : t) c = static_cast<char>(c - 'A' + 'a');
  std::string s = t + ":" + ip_str(ip) + ":" + std::to_string(port);
  if (conn) s += "#" + std::to_string(conn);
  return s;
}

std::string new_branch() { return "z9hG4bK" + random_token(16); }

std::string via_sent_by(std::string_view via) {
  // "SIP/2.0/UDP host:port;params": skip the protocol, stop at ';'.
  size_t i = 0;
  while (i < via.size() && via[i] != ' ' && via[i] != '\t') ++i;
  while (i < via.size() && (via[i] == ' ' || via[i] == '\t')) ++i;
  size_t end = via.find(';', i);
  std::string_view s = via.substr(i, end == std::string_view::npos ? via.size() - i : end - i);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct Transactions::Server {
  bool invite = false;
  enum State { kProceeding, kAccepted, kCompleted, kConfirmed } state = kProceeding;
  Peer peer;
  std::string key;
  std::string acc_key;        // INVITE: call-id|cseq while accepted
  Message request;            // kept for CANCEL's 487 and ACK matching
  std::string last_response;  // bytes, resent on retransmitted requests
  int last_status = 0;
  Timers::Id retransmit = 0, timeout = 0;
  int64_t interval = 0;
};

struct Transactions::Client {
  bool invite = false;
  enum State { kCalling, kProceeding, kAccepted, kCompleted } state = kCalling;
  Peer peer;
  std::string key;
  Message request;
  std::string bytes;
  ResponseFn fn;
  Timers::Id retransmit = 0, timeout = 0;
  int64_t interval = 0;
  bool cancel_pending = false, cancelled = false;
  std::string ack_bytes;  // non-2xx ACK, resent on retransmitted finals
};

Transactions::Transactions(Timers* timers, Sender* sender, Handler* handler, Timing timing)
    : timers_(timers), sender_(sender), handler_(handler), timing_(timing) {}

Transactions::~Transactions() {
  for (auto& [id, s] : server_) {
    timers_->cancel(s.retransmit);
    timers_->cancel(s.timeout);
  }
  for (auto& [id, c] : client_) {
    timers_->cancel(c.retransmit);
    timers_->cancel(c.timeout);
  }
}

void Transactions::send_bytes(const Peer& to, const std::string& bytes) {
  if (!sender_->send(to, bytes)) ++counters_.transport_errors;
}

void Transactions::receive(const Message& m, const Peer& from) {
  if (m.request)
    server_request(m, from);
  else
    client_response(m, from);
}

// --------------------------------------------------------------------------
// Server side

void Transactions::server_request(const Message& m, const Peer& from) {
  if (m.method == "ACK") {
    auto it = server_key_.find(server_key(m, "INVITE"));
    if (it != server_key_.end()) {
      Server& s = server_.at(it->second);
      if (s.state == Server::kCompleted) {  // ACK for our non-2xx final
        timers_->cancel(s.retransmit);
        timers_->cancel(s.timeout);
        s.state = Server::kConfirmed;
        uint64_t id = it->second;
        s.timeout = timers_->after(s.peer.reliable() ? 0 : timing_.t4, [this, id] { end_server(id); });
        return;
      }
      if (s.state == Server::kConfirmed) {
        ++counters_.absorbed;
        return;
      }
    }
    // ACK for a 2xx: stops the 2xx retransmission, then goes to the TU.
    auto acc = accepted_.find(accepted_key(m));
    if (acc != accepted_.end()) {
      uint64_t id = acc->second;
      accepted_.erase(acc);
      auto sit = server_.find(id);
      if (sit != server_.end()) {
        timers_->cancel(sit->second.retransmit);
        sit->second.retransmit = 0;
        sit->second.acc_key.clear();
        end_server(id);
      }
    }
    handler_->on_ack(m, from);
    return;
  }
  std::string key = server_key(m, m.method);
  auto it = server_key_.find(key);
  if (it != server_key_.end()) {  // a retransmission
    Server& s = server_.at(it->second);
    ++counters_.absorbed;
    if (!s.last_response.empty()) send_bytes(s.peer, s.last_response);
    return;
  }
  if (m.method == "CANCEL") {
    auto inv = server_key_.find(server_key(m, "INVITE"));
    if (inv != server_key_.end()) {
      uint64_t stx = inv->second;
      // The CANCEL is its own non-INVITE transaction, answered 200 here.
      uint64_t cid = next_id_++;
      Server c;
      c.peer = from;
      c.key = key;
      c.request = m;
      server_.emplace(cid, std::move(c));
      server_key_[key] = cid;
      respond(cid, make_response(m, 200, "OK"));
      Server& s = server_.at(stx);
      if (s.state == Server::kProceeding) handler_->on_cancel(stx, m);
      return;
    }
  }
  uint64_t id = next_id_++;
  Server s;
  s.invite = m.method == "INVITE";
  s.peer = from;
  s.key = key;
  s.request = m;
  server_.emplace(id, std::move(s));
  server_key_[key] = id;
  if (m.method == "INVITE") respond(id, make_response(m, 100, "Trying"));
  handler_->on_request(id, m, from);
}

const Peer* Transactions::peer_of(uint64_t stx) const {
  auto it = server_.find(stx);
  return it == server_.end() ? nullptr : &it->second.peer;
}

void Transactions::respond(uint64_t id, const Message& resp) {
  auto it = server_.find(id);
  if (it == server_.end()) return;
  Server& s = it->second;
  if (s.state != Server::kProceeding) return;  // already final
  s.last_response = resp.serialize();
  s.last_status = resp.status;
  send_bytes(s.peer, s.last_response);
  if (resp.status < 200) return;
  if (s.invite && resp.status < 300) {
    s.state = Server::kAccepted;
    s.acc_key = accepted_key(s.request);
    accepted_[s.acc_key] = id;
    if (!s.peer.reliable()) arm_server_retransmit(id, timing_.t1);
    s.timeout = timers_->after(64 * timing_.t1, [this, id] {
      auto sit = server_.find(id);
      if (sit == server_.end()) return;
      timers_->cancel(sit->second.retransmit);
      sit->second.timeout = 0;
      end_server(id);
      handler_->on_ack_timeout(id);
    });
    return;
  }
  s.state = Server::kCompleted;
  if (s.invite) {
    if (!s.peer.reliable()) arm_server_retransmit(id, timing_.t1);
    s.timeout = timers_->after(64 * timing_.t1, [this, id] { end_server(id); });  // Timer H
  } else {
    s.timeout = timers_->after(s.peer.reliable() ? 0 : 64 * timing_.t1,
                               [this, id] { end_server(id); });  // Timer J
  }
}

void Transactions::arm_server_retransmit(uint64_t id, int64_t interval) {
  Server& s = server_.at(id);
  s.interval = interval;
  s.retransmit = timers_->after(interval, [this, id] {
    auto it = server_.find(id);
    if (it == server_.end()) return;
    Server& s2 = it->second;
    s2.retransmit = 0;
    if (s2.state != Server::kCompleted && s2.state != Server::kAccepted) return;
    ++counters_.retransmissions;
    send_bytes(s2.peer, s2.last_response);
    arm_server_retransmit(id, std::min(s2.interval * 2, timing_.t2));  // Timer G
  });
}

void Transactions::end_server(uint64_t id) {
  auto it = server_.find(id);
  if (it == server_.end()) return;
  Server& s = it->second;
  timers_->cancel(s.retransmit);
  timers_->cancel(s.timeout);
  auto k = server_key_.find(s.key);
  if (k != server_key_.end() && k->second == id) server_key_.erase(k);
  if (!s.acc_key.empty()) {
    auto a = accepted_.find(s.acc_key);
    if (a != accepted_.end() && a->second == id) accepted_.erase(a);
  }
  server_.erase(it);
}

// --------------------------------------------------------------------------
// Client side

uint64_t Transactions::request(const Message& req, const Peer& to, ResponseFn fn) {
  uint64_t id = next_id_++;
  Client c;
  c.invite = req.method == "INVITE";
  c.peer = to;
  c.bytes = req.serialize();
  // Parsed back so that the derived fields (branch, CSeq, Call-ID) are the
  // ones on the wire, whatever the TU filled in.
  size_t used = 0;
  if (parse(c.bytes, false, &c.request, &used) != Error::kNone) c.request = req;
  c.key = c.request.top_branch + "|" + req.method;
  c.fn = std::move(fn);
  client_key_[c.key] = id;
  auto& ref = client_.emplace(id, std::move(c)).first->second;
  if (!sender_->send(to, ref.bytes)) {
    ++counters_.transport_errors;
    // Reported from the timer queue, not from inside the caller's call.
    ref.timeout = timers_->after(0, [this, id] {
      auto it = client_.find(id);
      if (it == client_.end()) return;
      it->second.timeout = 0;
      client_final(id, make_response(it->second.request, 503, "Service Unavailable"), true);
    });
    return id;
  }
  if (!to.reliable()) arm_client_retransmit(id, timing_.t1);
  ref.timeout = timers_->after(64 * timing_.t1, [this, id] {  // Timer B / F
    auto it = client_.find(id);
    if (it == client_.end()) return;
    it->second.timeout = 0;
    if (it->second.state == Client::kCalling || it->second.state == Client::kProceeding) {
      ++counters_.timeouts;
      client_final(id, make_response(it->second.request, 408, "Request Timeout"), true);
    } else {
      end_client(id);
    }
  });
  return id;
}

void Transactions::arm_client_retransmit(uint64_t id, int64_t interval) {
  Client& c = client_.at(id);
  c.interval = interval;
  c.retransmit = timers_->after(interval, [this, id] {
    auto it = client_.find(id);
    if (it == client_.end()) return;
    Client& c2 = it->second;
    c2.retransmit = 0;
    if (c2.invite && c2.state != Client::kCalling) return;  // Timer A stops at 1xx
    if (!c2.invite && c2.state != Client::kCalling && c2.state != Client::kProceeding) return;
    ++counters_.retransmissions;
    send_bytes(c2.peer, c2.bytes);
    int64_t next = c2.invite ? c2.interval * 2 : std::min(c2.interval * 2, timing_.t2);
    if (!c2.invite && c2.state == Client::kProceeding) next = timing_.t2;
    arm_client_retransmit(id, next);
  });
}

void Transactions::send_ack(const Message& ack, const Peer& to) { send_bytes(to, ack.serialize()); }

void Transactions::client_response(const Message& m, const Peer& from) {
  auto k = client_key_.find(m.top_branch + "|" + m.cseq_method);
  if (k == client_key_.end()) {
    ++counters_.stray_responses;
    return;
  }
  uint64_t id = k->second;
  Client& c = client_.at(id);
  if (m.status < 200) {
    if (c.state == Client::kCalling) {
      c.state = Client::kProceeding;
      if (c.invite) {
        timers_->cancel(c.retransmit);
        c.retransmit = 0;
      }
    }
    if (c.state != Client::kProceeding) return;
    if (c.cancel_pending && m.status > 100) {
      c.cancel_pending = false;
      send_cancel(id);
    }
    ResponseFn fn = c.fn;
    fn(m, false);
    return;
  }
  if (c.invite && m.status < 300) {
    // Accepted (RFC 6026): every 2xx, first or retransmitted, goes to the TU,
    // which ACKs it end to end; Timer M ends the transaction.
    if (c.state != Client::kAccepted) {
      timers_->cancel(c.retransmit);
      timers_->cancel(c.timeout);
      c.retransmit = 0;
      c.state = Client::kAccepted;
      c.timeout = timers_->after(64 * timing_.t1, [this, id] { end_client(id); });
    }
    ResponseFn fn = c.fn;
    fn(m, false);
    return;
  }
  if (c.state == Client::kCompleted || c.state == Client::kAccepted) {
    // A retransmitted final response: resend the ACK (INVITE) or ignore.
    if (!c.ack_bytes.empty()) send_bytes(c.peer, c.ack_bytes);
    return;
  }
  if (c.invite) {
    // RFC 3261 17.1.1.3: the ACK for a non-2xx is built from the request.
    Message ack;
    ack.request = true;
    ack.method = "ACK";
    ack.uri = c.request.uri;
    for (const Header& h : c.request.headers) {
      if (h.name == "Via") {
        if (ack.count("Via") == 0) ack.headers.push_back(h);
      } else if (h.name == "From" || h.name == "Call-ID" || h.name == "Route" ||
                 h.name == "Max-Forwards") {
        ack.headers.push_back(h);
      }
    }
    const std::string* to = m.get("To");
    if (to) ack.add("To", *to);
    ack.add("CSeq", std::to_string(c.request.cseq) + " ACK");
    c.ack_bytes = ack.serialize();
    send_bytes(c.peer, c.ack_bytes);
  }
  (void)from;
  client_final(id, m, false);
}

void Transactions::client_final(uint64_t id, const Message& resp, bool local) {
  auto it = client_.find(id);
  if (it == client_.end()) return;
  Client& c = it->second;
  timers_->cancel(c.retransmit);
  timers_->cancel(c.timeout);
  c.retransmit = c.timeout = 0;
  ResponseFn fn = std::move(c.fn);
  c.fn = nullptr;
  if (local || c.peer.reliable()) {
    end_client(id);
  } else {
    c.state = Client::kCompleted;  // absorb retransmitted finals: Timer D / K
    c.timeout = timers_->after(c.invite ? 32000 : timing_.t4, [this, id] { end_client(id); });
  }
  if (fn) fn(resp, local);
}

void Transactions::end_client(uint64_t id) {
  auto it = client_.find(id);
  if (it == client_.end()) return;
  timers_->cancel(it->second.retransmit);
  timers_->cancel(it->second.timeout);
  auto k = client_key_.find(it->second.key);
  if (k != client_key_.end() && k->second == id) client_key_.erase(k);
  client_.erase(it);
}

bool Transactions::cancel(uint64_t id) {
  auto it = client_.find(id);
  if (it == client_.end() || !it->second.invite) return false;
  Client& c = it->second;
  if (c.state == Client::kCompleted || c.state == Client::kAccepted) return false;
  if (c.cancelled || c.cancel_pending) return true;
  if (c.state == Client::kProceeding) {
    send_cancel(id);
    return true;
  }
  if (c.state == Client::kCalling) {
    c.cancel_pending = true;
    return true;
  }
  return false;
}

bool Transactions::abandon(uint64_t id) {
  auto it = client_.find(id);
  if (it == client_.end() || it->second.state != Client::kCalling) return false;
  end_client(id);
  return true;
}

void Transactions::send_cancel(uint64_t id) {
  Client& c = client_.at(id);
  c.cancelled = true;
  // RFC 3261 9.1: same Request-URI, Call-ID, To, From, CSeq number and top
  // Via (branch) as the INVITE, and its Route headers.
  Message cancel;
  cancel.request = true;
  cancel.method = "CANCEL";
  cancel.uri = c.request.uri;
  for (const Header& h : c.request.headers) {
    if (h.name == "Via") {
      if (cancel.count("Via") == 0) cancel.headers.push_back(h);
    } else if (h.name == "From" || h.name == "To" || h.name == "Call-ID" || h.name == "Route" ||
               h.name == "Max-Forwards") {
      cancel.headers.push_back(h);
    }
  }
  cancel.add("CSeq", std::to_string(c.request.cseq) + " CANCEL");
  cancel.cseq = c.request.cseq;
  cancel.cseq_method = "CANCEL";
  cancel.call_id = c.request.call_id;
  Peer to = c.peer;
  request(cancel, to, [](const Message&, bool) {});
}

}  // namespace sluice::sip
