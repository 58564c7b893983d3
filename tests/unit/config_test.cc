// The config file: every rule gives an error naming the field.
#include <catch2/catch.hpp>

#include <string>

#include "dataplane/config.h"

using sluice::parse_config;

namespace {
const std::string kPort =
    "ports { name: 'outside' device: 'net_af_packet0,iface=out0' address: '192.0.2.1' }\n";

std::string error_of(const std::string& text) {
  auto r = parse_config(text, "test.conf");
  return r.ok() ? std::string("ok") : std::string(r.status().message());
}
}  // namespace

TEST_CASE("a minimal config gets defaults", "[config]") {
  auto r = parse_config(kPort, "test.conf");
  REQUIRE(r.ok());
  CHECK(r->media().port_min() == 20000);
  CHECK(r->media().port_max() == 31000);
  CHECK(r->media().max_flows() == 65536);
  CHECK(r->ports(0).prefix_length() == 24);
  CHECK(r->ports(0).rx_queues() == 1);
  CHECK(r->grpc_listen() == "unix:/run/sluice/dataplane.sock");
  CHECK(r->idle_sleep_max_us() == 200);
}

TEST_CASE("config errors name the field", "[config]") {
  struct Case {
    std::string text;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"", "ports: at least one port"},
      {"ports { name: 'x' device: 'd' adress: '1.2.3.4' }", "test.conf:1:"},
      {"ports { name: 'x' device: 'd' address: '1.2.3' }", "ports[0].address: '1.2.3' is not an IPv4"},
      {"ports { device: 'd' address: '1.2.3.4' }", "ports[0].name: required"},
      {"ports { name: 'x' address: '1.2.3.4' }", "ports[0].device: required"},
      {kPort + kPort, "ports[1].name: duplicate port name"},
      {kPort + "ports { name: 'b' device: 'd' address: '192.0.2.1' }", "ports[1].address: address 192.0.2.1 is used twice"},
      {"ports { name: 'x' device: 'd' address: '1.2.3.4' prefix_length: 33 }", "ports[0].prefix_length"},
      {"ports { name: 'x' device: 'd' address: '1.2.3.4' vlan: 4095 }", "ports[0].vlan"},
      {"ports { name: 'x' device: 'd' address: '1.2.3.4' role: 'dmz' }", "ports[0].role: 'dmz'"},
      {"ports { name: 'x' device: 'd' address: '1.2.3.4' gateway: 'gw' }", "ports[0].gateway"},
      {kPort + "media { port_min: 30000 port_max: 20000 }", "media: port_min..port_max"},
      {kPort + "lcores: [0]", "lcores: need a control lcore"},
      {kPort + "lcores: [0, 1, 4096]", "lcores[2]: not a CPU number"},
      {kPort + "static_neighbors { address: '192.0.2.9' mac: 'zz' port: 'outside' }", "static_neighbors[0].mac"},
      {kPort + "static_neighbors { address: '192.0.2.9' mac: '02:00:00:00:00:01' port: 'lan' }", "static_neighbors[0].port: no port named 'lan'"},
      {kPort + "routes { prefix: '10.0.0.0' next_hop: '192.0.2.254' port: 'outside' }", "routes[0].prefix"},
      {kPort + "idle_sleep_max_us: 1000000", "idle_sleep_max_us"},
      {kPort + "ports { name: 'b' device: 'd' address: '192.0.2.2' exception_tap: 'a-very-long-tap-name' }", "ports[1].exception_tap"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    std::string e = error_of(c.text);
    CHECK(e.find(c.expect) != std::string::npos);
    CHECK(e.find("test.conf") != std::string::npos);
  }
}

TEST_CASE("a missing file is a clear error", "[config]") {
  auto r = sluice::load_config_file("/nonexistent/sluice.conf");
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("/nonexistent/sluice.conf: cannot open") == 0);
}
