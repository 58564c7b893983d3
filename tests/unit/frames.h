// Frame builders for the packet-core tests. Checksums here are computed by
// a deliberately naive 16-bit loop, independent of dataplane/core/net.cc.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/core/net.h"

namespace sluice::test {

inline uint16_t naive_sum(const std::vector<uint8_t>& b, size_t off, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(b[off + i] << 8 | b[off + i + 1]);
  if (len & 1) sum += uint32_t(b[off + len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

struct UdpFrame {
  net::Mac dst_mac{};
  net::Mac src_mac{};
  int vlan = -1;  // -1: untagged
  uint32_t src_ip = 0, dst_ip = 0;
  uint16_t sport = 0, dport = 0;
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint8_t proto = net::kProtoUdp;
  uint16_t frag = 0;  // flags+offset field
  std::vector<uint8_t> payload;
  bool bad_ip_csum = false;
  bool udp_csum_unfinished = false;  // as veth checksum offload leaves it
  size_t pad_to = 0;                 // Ethernet padding up to this length

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> f;
    f.insert(f.end(), dst_mac.begin(), dst_mac.end());
    f.insert(f.end(), src_mac.begin(), src_mac.end());
    if (vlan >= 0) {
      f.push_back(0x81);
      f.push_back(0x00);
      f.push_back(uint8_t(vlan >> 8));
      f.push_back(uint8_t(vlan));
    }
    f.push_back(0x08);
    f.push_back(0x00);
    size_t ip = f.size();
    uint16_t tot = uint16_t(20 + 8 + payload.size());
    uint8_t h[20] = {0x45, tos, uint8_t(tot >> 8), uint8_t(tot), 0x12, 0x34,
                     uint8_t(frag >> 8), uint8_t(frag), ttl, proto, 0, 0};
    for (int i = 0; i < 4; ++i) {
      h[12 + i] = uint8_t(src_ip >> (24 - 8 * i));
      h[16 + i] = uint8_t(dst_ip >> (24 - 8 * i));
    }
    f.insert(f.end(), h, h + 20);
    uint16_t c = uint16_t(~naive_sum(f, ip, 20));
    if (bad_ip_csum) c ^= 0x5555;
    f[ip + 10] = uint8_t(c >> 8);
    f[ip + 11] = uint8_t(c);
    size_t udp = f.size();
    uint16_t ulen = uint16_t(8 + payload.size());
    uint8_t u[8] = {uint8_t(sport >> 8), uint8_t(sport), uint8_t(dport >> 8), uint8_t(dport),
                    uint8_t(ulen >> 8), uint8_t(ulen), 0, 0};
    f.insert(f.end(), u, u + 8);
    f.insert(f.end(), payload.begin(), payload.end());
    uint16_t uc = udp_checksum(f, ip, udp);
    if (udp_csum_unfinished) uc = 0xbeef;
    f[udp + 6] = uint8_t(uc >> 8);
    f[udp + 7] = uint8_t(uc);
    while (f.size() < pad_to) f.push_back(0);
    return f;
  }

  // Pseudo-header + UDP header (checksum field as it is) + payload.
  static uint16_t udp_checksum(const std::vector<uint8_t>& f, size_t ip, size_t udp) {
    uint16_t ulen = uint16_t(f[udp + 4] << 8 | f[udp + 5]);
    std::vector<uint8_t> ph(f.begin() + long(ip) + 12, f.begin() + long(ip) + 20);
    ph.push_back(0);
    ph.push_back(17);
    ph.push_back(uint8_t(ulen >> 8));
    ph.push_back(uint8_t(ulen));
    std::vector<uint8_t> u(f.begin() + long(udp), f.begin() + long(udp) + ulen);
    u[6] = u[7] = 0;
    ph.insert(ph.end(), u.begin(), u.end());
    uint16_t c = uint16_t(~naive_sum(ph, 0, ph.size()));
    return c == 0 ? 0xffff : c;
  }
};

inline std::vector<uint8_t> rtp_payload(uint32_t ssrc, uint16_t seq, size_t size, uint8_t pt = 0) {
  std::vector<uint8_t> p = {0x80, pt, uint8_t(seq >> 8), uint8_t(seq), 0, 0, 0, 0,
                            uint8_t(ssrc >> 24), uint8_t(ssrc >> 16), uint8_t(ssrc >> 8),
                            uint8_t(ssrc)};
  for (size_t i = 0; i < size; ++i) p.push_back(uint8_t(i * 7 + seq));
  return p;
}

}  // namespace sluice::test
