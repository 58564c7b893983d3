// SIP over UDP, TCP and TLS on kernel sockets (RFC 3261 section 18).
//
// - Listeners: address, port, transport, allowed source networks; TLS ones
//   carry a certificate and optionally require client certificates (mutual
//   TLS) checked against a CA bundle. reload_tls() swaps in re-read files
//   for new connections without touching established ones.
// - Connections are reused in both directions (RFC 5923): a request toward a
//   peer goes over the connection it opened when there is one, so calls
//   reach a phone behind a NAT over its own connection.
// - Stream framing uses Content-Length; a buffer past 131072 bytes without a
//   whole message closes the connection. A CRLFCRLF ping is answered with a
//   CRLF pong (RFC 5626 4.4.1). Idle connections close after the listener's
//   idle timeout (per connection override for mobile clients).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "controlplane/net/loop.h"
#include "controlplane/sip/message.h"
#include "controlplane/sip/peer.h"

namespace sluice::net {

struct Cidr {
  uint32_t net = 0, mask = 0;
  bool contains(uint32_t ip) const { return (ip & mask) == net; }
};
bool parse_cidr(const std::string& s, Cidr* out);

struct TlsFiles {
  std::string certificate, private_key, ca;
  bool require_client_certificate = false;
  bool verify_server = false;
};

struct ListenerSpec {
  std::string name;
  std::string side;  // "outside" | "inside"
  uint32_t ip = 0;
  uint16_t port = 5060;
  sip::Transport transport = sip::Transport::kUdp;
  std::vector<Cidr> allow;  // empty: everyone
  std::string advertised;   // address written into Via/Contact; empty: ip
  TlsFiles tls;
  int idle_timeout_s = 90;
  int dscp = 24;  // CS3
};

class SipTransport : public sip::Sender {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void on_message(const sip::Message& m, const sip::Peer& from) = 0;
    // Unparseable input: `raw` for an answer (400) when it looks like a request.
    virtual void on_bad(const sip::Peer& from, sip::Error e, std::string_view raw) = 0;
    virtual void on_closed(uint64_t conn) { (void)conn; }
    // Nothing more is queued on a listener: a UDP socket was read until
    // empty, or the loop found nothing ready (every TCP/TLS connection).
    virtual void on_drained(int listener) { (void)listener; }
  };

  SipTransport(Loop* loop, Handler* handler);
  ~SipTransport() override;

  // Opens a listener; returns its index, or -1 with *error set.
  int listen(const ListenerSpec& spec, std::string* error);
  const ListenerSpec& listener(int i) const { return listeners_[i].spec; }
  int listeners() const { return static_cast<int>(listeners_.size()); }
  // The first listener on `side` with `t`, or -1.
  int find(const std::string& side, sip::Transport t) const;

  bool send(const sip::Peer& to, const std::string& bytes) override;

  // Re-reads certificates and CA bundles; false with *error when a file is
  // bad (the old context stays in use).
  bool reload_tls(std::string* error);
  // Certificate expiry (operators expect an alarm two weeks ahead, then
  // daily): the TLS listener whose certificate expires first and the seconds
  // left (negative once expired); false when no listener has TLS.
  bool tls_expiry(std::string* listener, int64_t* seconds_left) const;
  // Warns on stderr and counts (tls_expiry_warnings) when that certificate
  // expires within kTlsWarnDays; runs once a day from its first call, and
  // again after each reload.
  void check_tls_expiry();
  static constexpr int kTlsWarnDays = 14;
  void set_idle_timeout(uint64_t conn, int seconds);
  // Prints every message in and out to stderr (operator debugging; SDES
  // keys in SDP are masked).
  void set_trace(bool on) { trace_ = on; }
  bool connection_open(uint64_t conn) const { return conns_.count(conn) != 0; }
  // While a handler runs for a message: how long it waited, in
  // microseconds. A UDP datagram's time in its socket's queue (kernel
  // arrival to read); for a message from a TCP/TLS connection, how long
  // the loop had been busy when it read it (an upper bound: see
  // Loop::idle_at_us). -1 when not known.
  int64_t rx_delay_us() const { return rx_delay_us_; }
  size_t connections() const { return conns_.size(); }

  struct Counters {
    uint64_t rx_messages = 0, tx_messages = 0;
    uint64_t rx_bytes = 0, tx_bytes = 0;
    uint64_t parse_errors = 0;
    uint64_t not_allowed = 0;     // source outside the listener's networks
    uint64_t oversized = 0;       // stream buffers past the limit
    uint64_t keepalives = 0;      // CRLF pings answered (and UDP keep-alives)
    uint64_t tls_handshake_failures = 0;
    uint64_t idle_closed = 0;
    uint64_t send_failures = 0;
    uint64_t accepted = 0, connected = 0;
    uint64_t tls_expiry_warnings = 0;
    uint64_t rx_delay_max_us = 0;        // longest a datagram queued before it was read
    uint64_t rx_delayed_over_100ms = 0;  // datagrams that queued longer than 100 ms
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Listener {
    ListenerSpec spec;
    int fd = -1;
    SSL_CTX* ctx = nullptr;
  };
  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    int listener = -1;
    sip::Peer peer;
    SSL* ssl = nullptr;
    bool connecting = false, handshaking = false;
    std::string in, out;
    int64_t last_active = 0;
    int idle_timeout_s = 90;
  };
  void on_udp(int li);
  void on_accept(int li);
  void on_conn(uint64_t id, uint32_t events);
  void conn_read(Conn& c);
  void conn_flush(Conn& c);
  // One read or write on a connection, over TLS or not: the bytes moved, 0
  // when it would block, -1 when the connection failed or closed.
  ssize_t conn_io(Conn& c, bool out, void* buf, size_t len);
  void deliver_stream(Conn& c);
  void close_conn(uint64_t id);
  uint64_t open_conn(const sip::Peer& to, int li);
  void update_events(Conn& c);
  void sweep();
  SSL_CTX* make_ctx(const ListenerSpec& spec, bool server, std::string* error);
  bool allowed(const Listener& l, uint32_t ip);
  void handle_datagram(const char* data, size_t n, const sip::Peer& from);

  Loop* loop_;
  Handler* handler_;
  std::vector<Listener> listeners_;
  std::unordered_map<uint64_t, Conn> conns_;
  // RFC 5923 reuse: remote transport/address/port -> connection.
  std::map<std::tuple<int, uint32_t, uint16_t>, uint64_t> by_peer_;
  std::map<int, SSL_CTX*> client_ctx_;  // per listener, for outgoing TLS
  uint64_t next_conn_ = 1;
  Counters counters_;
  sip::Timers::Id sweep_timer_ = 0, expiry_timer_ = 0;
  bool trace_ = false;
  int64_t rx_delay_us_ = -1;
  void note_delay(int64_t us);  // sets rx_delay_us_ and its counters
  void trace(const char* dir, const sip::Peer& p, std::string_view bytes) const;
};

}  // namespace sluice::net
