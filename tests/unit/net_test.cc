#include <catch2/catch.hpp>

#include "dataplane/core/net.h"

using namespace sluice::net;

TEST_CASE("IPv4 and MAC text forms", "[net]") {
  CHECK(parse_ipv4("192.0.2.1") == 0xc0000201u);
  CHECK(parse_ipv4("0.0.0.0") == 0u);
  CHECK(parse_ipv4("255.255.255.255") == 0xffffffffu);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.", "a.b.c.d", "1..2.3",
                          "1.2.3.4 ", "01234.1.1.1"})
    CHECK_FALSE(parse_ipv4(bad).has_value());
  CHECK(format_ipv4(0xc0000201u) == "192.0.2.1");
  auto m = parse_mac("02:00:5e:10:aB:ff");
  REQUIRE(m);
  CHECK(format_mac(*m) == "02:00:5e:10:ab:ff");
  CHECK_FALSE(parse_mac("02:00:5e:10:ab").has_value());
  CHECK_FALSE(parse_mac("02-00-5e-10-ab-ff").has_value());
  auto p = parse_prefix("198.51.100.77/24");
  REQUIRE(p);
  CHECK(p->first == 0xc6336400u);
  CHECK(p->second == 24);
  CHECK_FALSE(parse_prefix("1.2.3.4/33").has_value());
  CHECK_FALSE(parse_prefix("1.2.3.4").has_value());
}

TEST_CASE("Internet checksum known answers", "[net][checksum]") {
  // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
  const uint8_t rfc1071[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  CHECK(csum_fold(csum_partial(rfc1071, sizeof rfc1071)) == 0xddf2);
  // A well-known IPv4 header (checksum 0xb861).
  uint8_t ip[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                    0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  CHECK(ipv4_header_checksum(ip, 20) == 0xb861);
  ip[10] = 0xb8;
  ip[11] = 0x61;
  CHECK(ipv4_header_ok(ip, 20));
  ip[3] ^= 1;
  CHECK_FALSE(ipv4_header_ok(ip, 20));
  // Odd-length data is padded with a zero byte.
  const uint8_t odd[] = {0x12, 0x34, 0x56};
  CHECK(csum_fold(csum_partial(odd, 3)) == 0x6834);
}
