#include "controlplane/net/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace sluice::net {

namespace {

constexpr size_t kMaxOutQueue = 4 << 20;

sockaddr_in sa(uint32_t ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(ip);
  a.sin_port = htons(port);
  return a;
}

// DSCP in the upper six bits of the IPv4 TOS byte (RFC 2474); ECN left to
// the kernel.
void set_dscp(int fd, int dscp) {
  int tos = dscp << 2;
  setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
}

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

bool only_crlf(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && p[i] != '\t' && p[i] != '\0') return false;
  return true;
}

}  // namespace

void SipTransport::trace(const char* dir, const sip::Peer& p, std::string_view bytes) const {
  std::string text(bytes);
  // Mask SDES keys: "inline:KEY" -> "inline:***".
  for (size_t at = text.find("inline:"); at != std::string::npos; at = text.find("inline:", at + 1)) {
    size_t end = text.find_first_of("|\r\n ", at + 7);
    text.replace(at + 7, (end == std::string::npos ? text.size() : end) - at - 7, "***");
  }
  fprintf(stderr, "---- %s %s\n%s\n", dir, p.str().c_str(), text.c_str());
}

bool parse_cidr(const std::string& s, Cidr* out) {
  size_t slash = s.find('/');
  uint32_t ip;
  if (!sip::parse_ip(s.substr(0, slash), &ip)) return false;
  int len = 32;
  if (slash != std::string::npos) {
    std::string l = s.substr(slash + 1);
    if (l.empty() || l.size() > 2 || l.find_first_not_of("0123456789") != std::string::npos)
      return false;
    len = std::stoi(l);
    if (len > 32) return false;
  }
  out->mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  out->net = ip & out->mask;
  return true;
}

SipTransport::SipTransport(Loop* loop, Handler* handler) : loop_(loop), handler_(handler) {
  sweep_timer_ = loop_->timers().after(1000, [this] { sweep(); });
  // The loop has nothing ready: no TCP/TLS connection holds unread bytes.
  loop_->set_idle_hook([this] {
    for (int li = 0; li < listeners(); ++li)
      if (listeners_[li].spec.transport != sip::Transport::kUdp) handler_->on_drained(li);
  });
}

SipTransport::~SipTransport() {
  loop_->set_idle_hook(nullptr);
  loop_->timers().cancel(sweep_timer_);
  loop_->timers().cancel(expiry_timer_);
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns_) ids.push_back(id);
  for (uint64_t id : ids) close_conn(id);
  for (Listener& l : listeners_) {
    if (l.fd >= 0) {
      loop_->del(l.fd);
      close(l.fd);
    }
    if (l.ctx) SSL_CTX_free(l.ctx);
  }
  for (auto& [i, ctx] : client_ctx_) SSL_CTX_free(ctx);
}

SSL_CTX* SipTransport::make_ctx(const ListenerSpec& spec, bool server, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx) {
    *error = ssl_error();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const TlsFiles& t = spec.tls;
  auto fail = [&](const std::string& what) {
    *error = spec.name + ": " + what + ": " + ssl_error();
    SSL_CTX_free(ctx);
    return nullptr;
  };
  if (!t.certificate.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, t.certificate.c_str()) != 1)
      return fail("certificate " + t.certificate);
    if (SSL_CTX_use_PrivateKey_file(ctx, t.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail("private key " + t.private_key);
    if (SSL_CTX_check_private_key(ctx) != 1) return fail("key does not match certificate");
  } else if (server) {
    *error = spec.name + ": TLS listener without a certificate";
    SSL_CTX_free(ctx);
    return nullptr;
  }
  if (!t.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, t.ca.c_str(), nullptr) != 1)
      return fail("CA bundle " + t.ca);
    if (server) {
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(t.ca.c_str());
      if (names) SSL_CTX_set_client_CA_list(ctx, names);
    }
  }
  if (server && t.require_client_certificate) {
    if (t.ca.empty()) {
      *error = spec.name + ": mutual TLS needs a CA bundle";
      SSL_CTX_free(ctx);
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else if (!server && t.verify_server) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

int SipTransport::listen(const ListenerSpec& spec, std::string* error) {
  Listener l;
  l.spec = spec;
  bool stream = spec.transport != sip::Transport::kUdp;
  if (spec.transport == sip::Transport::kTls) {
    l.ctx = make_ctx(spec, true, error);
    if (!l.ctx) return -1;
    SSL_CTX* cctx = make_ctx(spec, false, error);
    if (!cctx) {
      SSL_CTX_free(l.ctx);
      return -1;
    }
    client_ctx_[static_cast<int>(listeners_.size())] = cctx;
  }
  l.fd = socket(AF_INET, (stream ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  set_dscp(l.fd, spec.dscp);
  if (!stream) {
    int buf = 4 << 20;
    setsockopt(l.fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    // The kernel's arrival time of each datagram: how long it queued before
    // the loop read it (the overload signal, see rx_delay_us()).
    setsockopt(l.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  }
  sockaddr_in a = sa(spec.ip, spec.port);
  if (bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (stream && ::listen(l.fd, 1024) != 0)) {
    *error = spec.name + ": cannot listen on " + sip::ip_str(spec.ip) + ":" +
             std::to_string(spec.port) + "/" + sip::transport_name(spec.transport) + ": " +
             strerror(errno);
    close(l.fd);
    if (l.ctx) SSL_CTX_free(l.ctx);
    return -1;
  }
  int li = static_cast<int>(listeners_.size());
  listeners_.push_back(l);
  if (stream)
    loop_->add(l.fd, EPOLLIN, [this, li](uint32_t) { on_accept(li); });
  else
    loop_->add(l.fd, EPOLLIN, [this, li](uint32_t) { on_udp(li); });
  return li;
}

int SipTransport::find(const std::string& side, sip::Transport t) const {
  for (size_t i = 0; i < listeners_.size(); ++i)
    if (listeners_[i].spec.side == side && listeners_[i].spec.transport == t)
      return static_cast<int>(i);
  return -1;
}

bool SipTransport::allowed(const Listener& l, uint32_t ip) {
  if (l.spec.allow.empty()) return true;
  for (const Cidr& c : l.spec.allow)
    if (c.contains(ip)) return true;
  ++counters_.not_allowed;
  return false;
}

void SipTransport::handle_datagram(const char* data, size_t n, const sip::Peer& from) {
  counters_.rx_bytes += n;
  if (trace_) trace("in", from, std::string_view(data, n));
  if (only_crlf(data, n)) {  // NAT keep-alive
    ++counters_.keepalives;
    return;
  }
  sip::Message m;
  size_t used = 0;
  sip::Error e = sip::parse(std::string_view(data, n), false, &m, &used);
  if (e != sip::Error::kNone) {
    ++counters_.parse_errors;
    handler_->on_bad(from, e, std::string_view(data, n));
    return;
  }
  ++counters_.rx_messages;
  handler_->on_message(m, from);
}

void SipTransport::on_udp(int li) {
  static thread_local char buf[65536];
  for (int i = 0; i < 64; ++i) {
    sockaddr_in from{};
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr mh{};
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = recvmsg(listeners_[li].fd, &mh, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) handler_->on_drained(li);
      break;
    }
    rx_delay_us_ = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
      timespec arrived{}, now{};
      memcpy(&arrived, CMSG_DATA(c), sizeof arrived);
      clock_gettime(CLOCK_REALTIME, &now);
      note_delay((int64_t{now.tv_sec} - arrived.tv_sec) * 1000000 +
                 (int64_t{now.tv_nsec} - arrived.tv_nsec) / 1000);
    }
    sip::Peer p;
    p.transport = sip::Transport::kUdp;
    p.ip = ntohl(from.sin_addr.s_addr);
    p.port = ntohs(from.sin_port);
    p.listener = li;
    if (!allowed(listeners_[li], p.ip)) continue;
    handle_datagram(buf, static_cast<size_t>(n), p);
  }
  rx_delay_us_ = -1;
}

void SipTransport::note_delay(int64_t us) {
  rx_delay_us_ = us < 0 ? 0 : us;
  counters_.rx_delay_max_us = std::max<uint64_t>(counters_.rx_delay_max_us, rx_delay_us_);
  if (rx_delay_us_ > 100000) ++counters_.rx_delayed_over_100ms;
}

void SipTransport::on_accept(int li) {
  for (int i = 0; i < 64; ++i) {
    sockaddr_in from{};
    socklen_t fl = sizeof from;
    int fd = accept4(listeners_[li].fd, reinterpret_cast<sockaddr*>(&from), &fl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    uint32_t ip = ntohl(from.sin_addr.s_addr);
    if (!allowed(listeners_[li], ip)) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_dscp(fd, listeners_[li].spec.dscp);
    ++counters_.accepted;
    Conn c;
    c.id = next_conn_++;
    c.fd = fd;
    c.listener = li;
    c.peer.transport = listeners_[li].spec.transport;
    c.peer.ip = ip;
    c.peer.port = ntohs(from.sin_port);
    c.peer.conn = c.id;
    c.peer.listener = li;
    c.last_active = loop_->clock().now_ms();
    c.idle_timeout_s = listeners_[li].spec.idle_timeout_s;
    if (listeners_[li].ctx) {
      c.ssl = SSL_new(listeners_[li].ctx);
      SSL_set_fd(c.ssl, fd);
      SSL_set_accept_state(c.ssl);
      c.handshaking = true;
    }
    uint64_t id = c.id;
    by_peer_[{static_cast<int>(c.peer.transport), c.peer.ip, c.peer.port}] = id;
    conns_.emplace(id, std::move(c));
    loop_->add(fd, EPOLLIN, [this, id](uint32_t ev) { on_conn(id, ev); });
  }
}

uint64_t SipTransport::open_conn(const sip::Peer& to, int li) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_dscp(fd, listeners_[li].spec.dscp);
  sockaddr_in local = sa(listeners_[li].spec.ip, 0);
  bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
  sockaddr_in dst = sa(to.ip, to.port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    close(fd);
    return 0;
  }
  ++counters_.connected;
  Conn c;
  c.id = next_conn_++;
  c.fd = fd;
  c.listener = li;
  c.peer = to;
  c.peer.conn = c.id;
  c.peer.listener = li;
  c.connecting = true;
  c.last_active = loop_->clock().now_ms();
  c.idle_timeout_s = listeners_[li].spec.idle_timeout_s;
  if (to.transport == sip::Transport::kTls) {
    c.ssl = SSL_new(client_ctx_.at(li));
    SSL_set_fd(c.ssl, fd);
    SSL_set_connect_state(c.ssl);
    c.handshaking = true;
  }
  uint64_t id = c.id;
  by_peer_[{static_cast<int>(to.transport), to.ip, to.port}] = id;
  conns_.emplace(id, std::move(c));
  loop_->add(fd, EPOLLIN | EPOLLOUT, [this, id](uint32_t ev) { on_conn(id, ev); });
  return id;
}

bool SipTransport::send(const sip::Peer& to, const std::string& bytes) {
  if (trace_) trace("out", to, bytes);
  if (to.transport == sip::Transport::kUdp) {
    int li = to.listener;
    if (li < 0 || li >= listeners() || listeners_[li].spec.transport != sip::Transport::kUdp) {
      li = -1;
      for (int i = 0; i < listeners(); ++i)
        if (listeners_[i].spec.transport == sip::Transport::kUdp) { li = i; break; }
      if (li < 0) {
        ++counters_.send_failures;
        return false;
      }
    }
    sockaddr_in dst = sa(to.ip, to.port);
    ssize_t n = sendto(listeners_[li].fd, bytes.data(), bytes.size(), 0,
                       reinterpret_cast<sockaddr*>(&dst), sizeof dst);
    if (n != static_cast<ssize_t>(bytes.size())) {
      ++counters_.send_failures;
      return false;
    }
    ++counters_.tx_messages;
    counters_.tx_bytes += bytes.size();
    return true;
  }
  uint64_t id = 0;
  if (to.conn && conns_.count(to.conn)) {
    id = to.conn;
  } else {
    auto it = by_peer_.find({static_cast<int>(to.transport), to.ip, to.port});
    if (it != by_peer_.end() && conns_.count(it->second)) id = it->second;
  }
  if (!id) {
    int li = to.listener;
    if (li < 0 || li >= listeners() || listeners_[li].spec.transport != to.transport) {
      ++counters_.send_failures;
      return false;
    }
    id = open_conn(to, li);
    if (!id) {
      ++counters_.send_failures;
      return false;
    }
  }
  Conn& c = conns_.at(id);
  if (c.out.size() + bytes.size() > kMaxOutQueue) {
    ++counters_.send_failures;
    return false;
  }
  c.out += bytes;
  ++counters_.tx_messages;
  counters_.tx_bytes += bytes.size();
  if (!c.connecting && !c.handshaking) conn_flush(c);
  if (conns_.count(id)) update_events(conns_.at(id));
  return true;
}

void SipTransport::update_events(Conn& c) {
  uint32_t ev = EPOLLIN;
  if (c.connecting || !c.out.empty()) ev |= EPOLLOUT;
  if (c.ssl && c.handshaking) ev |= EPOLLOUT;  // cheap: a handshake is short
  loop_->mod(c.fd, ev);
}

void SipTransport::on_conn(uint64_t id, uint32_t events) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if (c.connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
      close_conn(id);
      return;
    }
    c.connecting = false;
  }
  if (c.handshaking) {
    int r = SSL_do_handshake(c.ssl);
    if (r != 1) {
      int e = SSL_get_error(c.ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        update_events(c);
        return;
      }
      ++counters_.tls_handshake_failures;
      ERR_clear_error();
      close_conn(id);
      return;
    }
    c.handshaking = false;
    c.last_active = loop_->clock().now_ms();
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    conn_read(c);
    rx_delay_us_ = -1;
    if (!conns_.count(id)) return;
  }
  conn_flush(c);
  if (conns_.count(id)) update_events(conns_.at(id));
}

ssize_t SipTransport::conn_io(Conn& c, bool out, void* buf, size_t len) {
  if (c.ssl) {
    int r = out ? SSL_write(c.ssl, buf, static_cast<int>(len)) : SSL_read(c.ssl, buf, static_cast<int>(len));
    if (r > 0) return r;
    int e = SSL_get_error(c.ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    ERR_clear_error();
    return -1;
  }
  ssize_t n = out ? ::write(c.fd, buf, len) : ::read(c.fd, buf, len);
  if (n > 0) return n;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  return -1;  // an error, or the peer closed
}

void SipTransport::conn_read(Conn& c) {
  uint64_t id = c.id;
  char buf[16384];
  for (;;) {
    ssize_t n = conn_io(c, false, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      close_conn(id);
      return;
    }
    counters_.rx_bytes += static_cast<size_t>(n);
    // These bytes waited at most as long as the loop has been busy. Taken
    // per read: a connection that keeps sending while the loop works
    // through it is read here over and over, and its later messages have
    // waited longer than its first.
    note_delay(Loop::now_us() - loop_->idle_at_us());
    c.in.append(buf, static_cast<size_t>(n));
    c.last_active = loop_->clock().now_ms();
    deliver_stream(c);
    if (!conns_.count(id)) return;
  }
}

void SipTransport::deliver_stream(Conn& c) {
  uint64_t id = c.id;
  for (;;) {
    // RFC 5626 4.4.1: CRLFCRLF is a ping, answered with CRLF; a lone CRLF
    // is a pong (or padding) and is skipped.
    if (c.in.compare(0, 4, "\r\n\r\n") == 0) {
      c.in.erase(0, 4);
      ++counters_.keepalives;
      c.out += "\r\n";
      continue;
    }
    if (c.in.size() >= 2 && c.in.compare(0, 2, "\r\n") == 0 &&
        (c.in.size() == 2 || c.in[2] != '\r')) {
      c.in.erase(0, 2);
      continue;
    }
    if (c.in.empty()) return;
    sip::Message m;
    size_t used = 0;
    sip::Error e = sip::parse(c.in, true, &m, &used);
    if (e == sip::Error::kIncomplete) {
      if (c.in.size() > sip::kMaxMessage) {
        ++counters_.oversized;
        close_conn(id);
      }
      return;
    }
    if (e != sip::Error::kNone) {
      // A stream cannot be resynchronised after a framing error: answer if
      // it was a request, then close.
      ++(e == sip::Error::kTooLarge ? counters_.oversized : counters_.parse_errors);
      handler_->on_bad(c.peer, e, c.in);
      if (conns_.count(id)) {
        Conn& cc = conns_.at(id);
        conn_flush(cc);
        close_conn(id);
      }
      return;
    }
    if (trace_) trace("in", c.peer, std::string_view(c.in).substr(0, used));
    c.in.erase(0, used);
    ++counters_.rx_messages;
    sip::Peer from = c.peer;
    handler_->on_message(m, from);
    if (!conns_.count(id)) return;
  }
}

void SipTransport::conn_flush(Conn& c) {
  uint64_t id = c.id;
  while (!c.out.empty() && !c.connecting && !c.handshaking) {
    ssize_t n = conn_io(c, true, c.out.data(), c.out.size());
    if (n == 0) return;
    if (n < 0) {
      close_conn(id);
      return;
    }
    c.out.erase(0, static_cast<size_t>(n));
  }
}

void SipTransport::close_conn(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  loop_->del(c.fd);
  if (c.ssl) {
    SSL_shutdown(c.ssl);
    SSL_free(c.ssl);
    ERR_clear_error();
  }
  close(c.fd);
  auto p = by_peer_.find({static_cast<int>(c.peer.transport), c.peer.ip, c.peer.port});
  if (p != by_peer_.end() && p->second == id) by_peer_.erase(p);
  conns_.erase(it);
  handler_->on_closed(id);
}

void SipTransport::set_idle_timeout(uint64_t conn, int seconds) {
  auto it = conns_.find(conn);
  if (it != conns_.end()) it->second.idle_timeout_s = seconds;
}

void SipTransport::sweep() {
  int64_t now = loop_->clock().now_ms();
  std::vector<uint64_t> idle;
  for (auto& [id, c] : conns_)
    if (c.idle_timeout_s > 0 && now - c.last_active > int64_t{c.idle_timeout_s} * 1000)
      idle.push_back(id);
  for (uint64_t id : idle) {
    ++counters_.idle_closed;
    close_conn(id);
  }
  sweep_timer_ = loop_->timers().after(1000, [this] { sweep(); });
}

bool SipTransport::reload_tls(std::string* error) {
  std::vector<std::pair<int, std::pair<SSL_CTX*, SSL_CTX*>>> fresh;
  for (int i = 0; i < listeners(); ++i) {
    if (listeners_[i].spec.transport != sip::Transport::kTls) continue;
    SSL_CTX* s = make_ctx(listeners_[i].spec, true, error);
    SSL_CTX* c = s ? make_ctx(listeners_[i].spec, false, error) : nullptr;
    if (!s || !c) {
      if (s) SSL_CTX_free(s);
      for (auto& f : fresh) {
        SSL_CTX_free(f.second.first);
        SSL_CTX_free(f.second.second);
      }
      return false;
    }
    fresh.push_back({i, {s, c}});
  }
  // Established connections hold a reference to the old context.
  for (auto& f : fresh) {
    SSL_CTX_free(listeners_[f.first].ctx);
    listeners_[f.first].ctx = f.second.first;
    SSL_CTX_free(client_ctx_[f.first]);
    client_ctx_[f.first] = f.second.second;
  }
  if (expiry_timer_) check_tls_expiry();
  return true;
}

bool SipTransport::tls_expiry(std::string* listener, int64_t* seconds_left) const {
  bool any = false;
  for (const Listener& l : listeners_) {
    X509* cert = l.ctx ? SSL_CTX_get0_certificate(l.ctx) : nullptr;
    if (!cert) continue;
    int days = 0, secs = 0;
    if (!ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert))) continue;
    int64_t left = int64_t{days} * 86400 + secs;
    if (!any || left < *seconds_left) {
      *seconds_left = left;
      *listener = l.spec.name;
    }
    any = true;
  }
  return any;
}

void SipTransport::check_tls_expiry() {
  loop_->timers().cancel(expiry_timer_);
  expiry_timer_ = loop_->timers().after(86400 * 1000, [this] { check_tls_expiry(); });
  std::string name;
  int64_t left = 0;
  if (!tls_expiry(&name, &left) || left > int64_t{kTlsWarnDays} * 86400) return;
  ++counters_.tls_expiry_warnings;
  if (left <= 0)
    fprintf(stderr, "sluice-controlplane: WARNING: the TLS certificate of listener %s has expired\n",
            name.c_str());
  else
    fprintf(stderr,
            "sluice-controlplane: WARNING: the TLS certificate of listener %s expires in %lld h "
            "(renew it and send SIGHUP)\n",
            name.c_str(), static_cast<long long>(left / 3600));
}

}  // namespace sluice::net
