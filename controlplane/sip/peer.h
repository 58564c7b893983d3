// Where a SIP message came from or goes to: the transport, the remote
// address, and for TCP/TLS the connection, so that responses and requests
// toward a phone behind a NAT reuse the flow it opened (RFC 3261 18.2.2,
// RFC 5923, RFC 5626's idea without its headers).
#pragma once

#include <cstdint>
#include <string>

namespace sluice::sip {

enum class Transport : uint8_t { kUdp, kTcp, kTls };
const char* transport_name(Transport t);  // "UDP", "TCP", "TLS"

struct Peer {
  Transport transport = Transport::kUdp;
  uint32_t ip = 0;     // IPv4, host byte order
  uint16_t port = 0;
  uint64_t conn = 0;   // TCP/TLS connection id; 0: any (open one if needed)
  int listener = -1;   // socket it came in on / goes out of; -1: any on the side
  bool reliable() const { return transport != Transport::kUdp; }
  std::string str() const;  // "udp:192.0.2.10:5060"
  bool same_address(const Peer& o) const {
    return transport == o.transport && ip == o.ip && port == o.port;
  }
};

std::string ip_str(uint32_t ip);
bool parse_ip(const std::string& s, uint32_t* ip);

// The transport side of the SIP stack. send() returns false when the bytes
// cannot be handed to the kernel (no connection, queue full); the caller
// treats that as a transport error (RFC 3261 8.1.3.1).
class Sender {
 public:
  virtual ~Sender() = default;
  virtual bool send(const Peer& to, const std::string& bytes) = 0;
};

}  // namespace sluice::sip
