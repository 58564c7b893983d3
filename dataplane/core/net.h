// Plain-C++ network helpers shared by the packet core, the control lcore and
// the tests: address parsing and formatting, Internet checksums, header
// layouts. No DPDK here so that the core is testable without the EAL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::net {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr size_t kEthHdr = 14;
inline constexpr size_t kVlanHdr = 4;
inline constexpr size_t kIpv4Hdr = 20;
inline constexpr size_t kUdpHdr = 8;

using Mac = std::array<uint8_t, 6>;

inline uint16_t load16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void store16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void store32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

// IPv4 addresses are host-order uint32 throughout the core.
std::optional<uint32_t> parse_ipv4(std::string_view s);
std::string format_ipv4(uint32_t ip);
std::optional<Mac> parse_mac(std::string_view s);
std::string format_mac(const Mac& m);
// "a.b.c.d/len" -> (address, prefix length)
std::optional<std::pair<uint32_t, uint8_t>> parse_prefix(std::string_view s);
inline uint32_t prefix_mask(uint8_t len) {
  return len == 0 ? 0 : ~uint32_t(0) << (32 - len);
}

// One's-complement sum of a byte range (big-endian 16-bit words), not folded.
uint64_t csum_partial(const uint8_t* p, size_t len, uint64_t sum = 0);
inline uint16_t csum_fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}
// Header checksum of an IPv4 header with its checksum field treated as 0.
uint16_t ipv4_header_checksum(const uint8_t* ip, size_t hlen);
// Full UDP checksum (pseudo-header + header + payload) over IPv4. The UDP
// checksum field is treated as 0. Returns 0xffff instead of 0 (RFC 768).
uint16_t udp4_checksum(uint32_t src, uint32_t dst, const uint8_t* udp, size_t udp_len);
// True when a received IPv4 header checksum verifies.
inline bool ipv4_header_ok(const uint8_t* ip, size_t hlen) {
  return csum_fold(csum_partial(ip, hlen)) == 0xffff;
}

}  // namespace sluice::net
