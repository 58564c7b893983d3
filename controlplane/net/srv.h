// DNS SRV (RFC 2782) lookups with the system resolver, for upstream PBX
// clusters: every target with its priority, weight, port and IPv4 address.
// Blocking: called from the SrvWatch thread, never from the event loop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::net {

struct SrvTarget {
  std::string target;  // the SRV target's name
  uint32_t ip = 0;     // its IPv4 address, host order
  uint16_t port = 0, priority = 0, weight = 0;
};

// Resolves `name` ("_sip._udp.pbx.example.com"). Targets take their address
// from the response's additional section, else from an A query of their
// own; a target without an address is left out. *ttl: the smallest TTL of
// the records used. False with *err when the name does not resolve, has
// no usable target, or the response is malformed.
bool resolve_srv(const std::string& name, std::vector<SrvTarget>* out, uint32_t* ttl,
                 std::string* err);

}  // namespace sluice::net
