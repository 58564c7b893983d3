#include "dataplane/core/net.h"

#include <cstring>

#include <cstdio>

namespace sluice::net {

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  uint32_t out = 0;
  int parts = 0;
  size_t i = 0;
  while (parts < 4) {
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
    uint32_t v = 0;
    size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + uint32_t(s[i] - '0');
      if (++digits > 3 || v > 255) return std::nullopt;
      ++i;
    }
    out = out << 8 | v;
    ++parts;
    if (parts < 4) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != s.size()) return std::nullopt;
  return out;
}

std::string format_ipv4(uint32_t ip) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255,
                (ip >> 8) & 255, ip & 255);
  return buf;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Mac> parse_mac(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  Mac m{};
  for (size_t i = 0; i < 6; ++i) {
    int hi = hexval(s[i * 3]), lo = hexval(s[i * 3 + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i < 5 && s[i * 3 + 2] != ':') return std::nullopt;
    m[i] = uint8_t(hi << 4 | lo);
  }
  return m;
}

std::string format_mac(const Mac& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
                m[3], m[4], m[5]);
  return buf;
}

std::optional<std::pair<uint32_t, uint8_t>> parse_prefix(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = parse_ipv4(s.substr(0, slash));
  std::string_view len = s.substr(slash + 1);
  if (!ip || len.empty() || len.size() > 2) return std::nullopt;
  unsigned l = 0;
  for (char c : len) {
    if (c < '0' || c > '9') return std::nullopt;
    l = l * 10 + unsigned(c - '0');
  }
  if (l > 32) return std::nullopt;
  return std::make_pair(*ip & prefix_mask(uint8_t(l)), uint8_t(l));
}

uint64_t csum_partial(const uint8_t* p, size_t len, uint64_t sum) {
  // A one's-complement sum does not depend on byte order (RFC 1071 2.B):
  // add native 64-bit words with end-around carry, fold to 16 bits, and swap
  // once into the big-endian domain the callers add pseudo-headers in.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host");
  uint64_t s = 0, carry = 0;
  while (len >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    s += v;
    carry += s < v;
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    s += v;
    carry += s < v;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    s += v;
    carry += s < v;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint64_t v = p[0];  // the odd byte is the high byte of a zero-padded word
    s += v;
    carry += s < v;
  }
  uint64_t t = s + carry;
  if (t < s) ++t;
  t = (t & 0xffffffff) + (t >> 32);
  t = (t & 0xffffffff) + (t >> 32);
  t = (t & 0xffff) + (t >> 16);
  t = (t & 0xffff) + (t >> 16);
  return sum + __builtin_bswap16(uint16_t(t));
}

uint16_t ipv4_header_checksum(const uint8_t* ip, size_t hlen) {
  uint64_t sum = csum_partial(ip, 10);
  sum = csum_partial(ip + 12, hlen - 12, sum);
  return uint16_t(~csum_fold(sum));
}

uint16_t udp4_checksum(uint32_t src, uint32_t dst, const uint8_t* udp, size_t udp_len) {
  uint64_t sum = uint64_t(src) + dst + kProtoUdp + udp_len;
  sum = csum_partial(udp, 6, sum);
  sum = csum_partial(udp + 8, udp_len - 8, sum);
  uint16_t c = uint16_t(~csum_fold(sum));
  return c == 0 ? 0xffff : c;
}

}  // namespace sluice::net
