// Control plane pieces without sockets: relay port pools, SDES keys, and
// config validation (defaults filled, bad fields named).
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "controlplane/config.h"
#include "controlplane/media.h"

using namespace sluice::cp;

TEST_CASE("port pool: even RTP ports, RTCP next, freed ports reused last") {
  PortPool p(20000, 20009);  // pairs 20000, 20002, 20004, 20006, 20008
  CHECK(p.free() == 5);
  std::set<uint16_t> got;
  for (int i = 0; i < 5; ++i) got.insert(p.take());
  CHECK(got == std::set<uint16_t>{20000, 20002, 20004, 20006, 20008});
  CHECK(p.take() == 0);  // exhausted
  p.give(20004);
  p.give(20004);  // twice: ignored
  p.give(20005);  // odd: ignored
  p.give(31000);  // outside: ignored
  CHECK(p.free() == 1);
  CHECK(p.take() == 20004);
  PortPool q(20000, 20009);
  CHECK(q.claim(20006));
  CHECK_FALSE(q.claim(20006));
  for (int i = 0; i < 4; ++i) CHECK(q.take() != 20006);
  CHECK(q.take() == 0);
}

TEST_CASE("SDES keys: fresh, the suite's size, split back into key and salt") {
  const SuiteInfo* cm = suite_by_name("AES_CM_128_HMAC_SHA1_80");
  const SuiteInfo* gcm = suite_by_name("AEAD_AES_256_GCM");
  REQUIRE(cm);
  REQUIRE(gcm);
  CHECK(suite_by_name("AES_CM_128_NULL_AUTH") == nullptr);
  std::string a = new_inline_key(*cm), b = new_inline_key(*cm);
  CHECK(a != b);
  CHECK(a.size() == 40);  // base64 of 30 bytes
  std::string k, s;
  REQUIRE(split_inline_key(*cm, a, &k, &s));
  CHECK(k.size() == 16);
  CHECK(s.size() == 14);
  REQUIRE(split_inline_key(*gcm, new_inline_key(*gcm), &k, &s));
  CHECK(k.size() == 32);
  CHECK(s.size() == 12);
  CHECK_FALSE(split_inline_key(*gcm, a, &k, &s));      // wrong size for the suite
  CHECK_FALSE(split_inline_key(*cm, "!!notbase64", &k, &s));
  CHECK(suite_by_number(4) == suite_by_name("AEAD_AES_128_GCM"));
}

namespace {
const char kGood[] = R"(
listeners { side: "outside" address: "192.0.2.1" transport: TLS
  tls { certificate_file: "c.pem" private_key_file: "k.pem" } }
listeners { side: "inside" address: "198.51.100.1" }
upstreams { host: "198.51.100.10" }
media { outside { address: "192.0.2.1" } inside { address: "198.51.100.1" } }
)";

std::string error_of(const std::string& text) {
  auto c = parse_config(text, "t.conf");
  return c.ok() ? std::string() : std::string(c.status().message());
}
}  // namespace

TEST_CASE("config: defaults are filled in") {
  auto c = parse_config(kGood, "t.conf");
  REQUIRE(c.ok());
  CHECK(c->listeners(0).port() == 5061);  // TLS default
  CHECK(c->listeners(1).port() == 5060);
  CHECK(c->listeners(1).idle_timeout_s() == 90);
  CHECK(c->upstreams(0).port() == 5060);
  CHECK(c->media().port_min() == 20000);
  CHECK(c->media().port_max() == 31000);
  CHECK(c->media().outside().srtp() == sluice::controlplane::v1::OPTIONAL);
  CHECK(c->media().inside().srtp() == sluice::controlplane::v1::OFF);
  CHECK(c->media().outside().suites_size() == 2);
  CHECK(c->timers().t1_ms() == 500);
  CHECK(c->timers().invite_timeout_s() == 180);
  CHECK(c->timers().session_expires_s() == 14400);
  CHECK(c->registrations().mobile_idle_timeout_s() == 1200);
  CHECK(c->security().auth_failures() == 10);
  CHECK(c->admin_listen() == "unix:/run/sluice/controlplane.sock");
}

TEST_CASE("config: errors name the field") {
  std::string g = kGood;
  CHECK(error_of("listeners { side: \"x\" address: \"1.2.3.4\" }").find("listeners[0].side") != std::string::npos);
  CHECK(error_of(g + "listeners { side: \"inside\" address: \"nope\" }").find("listeners[2].address") != std::string::npos);
  CHECK(error_of(g + "listeners { side: \"outside\" address: \"192.0.2.1\" transport: TLS tls { certificate_file: \"c\" private_key_file: \"k\" } }")
            .find("the same address, port and protocol twice") != std::string::npos);
  // media is a single message: the variants replace the good one.
  std::string base = g.substr(0, g.find("media {"));
  std::string sides = R"(outside { address: "192.0.2.1" } inside { address: "198.51.100.1" })";
  CHECK(error_of(base + "media { port_min: 20001 " + sides + " }").find("media.port_min") != std::string::npos);
  CHECK(error_of(base + "media { max_senders: 11 " + sides + " }").find("media.max_senders") != std::string::npos);
  CHECK(error_of(base + R"(media { outside { address: "192.0.2.1" suites: "ROT13" } inside { address: "198.51.100.1" } })")
            .find("media.outside.suites[0]") != std::string::npos);
  CHECK(error_of(base + R"(media { outside { address: "192.0.2.1" } })").find("media.inside.address") != std::string::npos);
  CHECK(error_of(g + "timers { invite_timeout_s: 301 }").find("timers.invite_timeout_s") != std::string::npos);
  CHECK(error_of(g + "upstreams { host: \"198.51.100.11\" transport: TCP }").find("upstreams[1].transport") != std::string::npos);
  CHECK(error_of(g + "listeners { side: \"outside\" address: \"192.0.2.1\" allow: \"10.0.0.0/33\" }").find("allow[0]") != std::string::npos);
  CHECK(error_of("listeners { side: \"outside\" address: \"192.0.2.1\" tls { require_client_certificate: true } transport: TLS }")
            .find("tls.certificate_file") != std::string::npos);
  CHECK(error_of("bogus_field: 1").find("t.conf:1") != std::string::npos);
  CHECK(error_of(R"(listeners { side: "outside" address: "192.0.2.1" })").find("inside") != std::string::npos);
}
