// Locating upstream PBX clusters in DNS with the system resolver: NAPTR
// (RFC 3263 4.1) and SRV (RFC 2782) down to every target with its
// priority, weight, port, IPv4 address and transport. Blocking: called from
// the SrvWatch thread, never from the event loop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::net {

enum class SrvTransport : uint8_t { kUdp, kTcp, kTls };

struct SrvTarget {
  std::string target;  // the SRV target's name
  uint32_t ip = 0;     // its IPv4 address, host order
  uint16_t port = 0, priority = 0, weight = 0;
  SrvTransport transport = SrvTransport::kUdp;
};

// The transport an SRV name stands for: "_sips._tcp." TLS, "_sip._tcp." TCP,
// anything else UDP.
SrvTransport transport_of_srv_name(const std::string& name);

// One NAPTR record (RFC 3403) as it bears on SIP.
struct Naptr {
  uint16_t order = 0, preference = 0;
  std::string flags, service, replacement;
};

// The NAPTR records RFC 3263 4.1 lets a SIP client use, best first: flag
// "s", a service it speaks (SIP+D2U, SIP+D2T, SIPS+D2T), sorted by order
// then preference. Exposed for tests.
std::vector<Naptr> usable_naptrs(std::vector<Naptr> all);

// Resolves `name` ("_sip._udp.pbx.example.com"). Targets take their address
// from the response's additional section, else from an A query of their
// own; a target without an address is left out. *ttl: the smallest TTL of
// the records used. False with *err when the name does not resolve, has
// no usable target, or the response is malformed.
bool resolve_srv(const std::string& name, std::vector<SrvTarget>* out, uint32_t* ttl,
                 std::string* err);

// RFC 3263 4.1 for a SIP domain ("pbx.example.com"): its NAPTR records, and
// the SRV name of the first usable one that has targets; without NAPTR
// records, the SRV names _sips._tcp, _sip._tcp and _sip._udp under it, the
// first with targets. *via says which SRV name answered. A name that is
// already an SRV name ("_sip._udp....") is resolved as one.
bool resolve_upstream(const std::string& name, std::vector<SrvTarget>* out, uint32_t* ttl,
                      std::string* via, std::string* err);

}  // namespace sluice::net
