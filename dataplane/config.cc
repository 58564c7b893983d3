#include "dataplane/config.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text_config.h"
#include "dataplane/core/net.h"
#include "dataplane/core/packet.h"

namespace sluice {

using ::sluice::dataplane::v1::DataplaneConfig;

namespace {

absl::Status bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

}  // namespace

absl::StatusOr<DataplaneConfig> parse_config(const std::string& text, const std::string& origin) {
  return parse_text_config<DataplaneConfig>(text, origin, validate_config);
}

absl::StatusOr<DataplaneConfig> load_config_file(const std::string& path) {
  auto text = read_config_file(path);
  if (!text.ok()) return text.status();
  return parse_config(*text, path);
}

absl::Status validate_config(DataplaneConfig& cfg) {
  if (cfg.ports_size() == 0) return bad("ports", "at least one port is required");
  if (cfg.ports_size() > kMaxPorts)
    return bad("ports", absl::StrCat("at most ", kMaxPorts, " ports are supported"));
  std::set<std::string> names;
  std::set<uint32_t> addrs;
  for (int i = 0; i < cfg.ports_size(); ++i) {
    auto& p = *cfg.mutable_ports(i);
    std::string f = absl::StrCat("ports[", i, "]");
    if (p.name().empty()) return bad(f + ".name", "required");
    if (!names.insert(p.name()).second)
      return bad(f + ".name", absl::StrCat("duplicate port name '", p.name(), "'"));
    if (p.device().empty()) return bad(f + ".device", "required (a PCI address or vdev)");
    if (!p.role().empty() && p.role() != "outside" && p.role() != "inside")
      return bad(f + ".role", absl::StrCat("'", p.role(), "' is not 'outside' or 'inside'"));
    auto ip = net::parse_ipv4(p.address());
    if (!ip) return bad(f + ".address", absl::StrCat("'", p.address(), "' is not an IPv4 address"));
    if (!addrs.insert(*ip).second)
      return bad(f + ".address", absl::StrCat("address ", p.address(), " is used twice"));
    if (p.prefix_length() == 0) p.set_prefix_length(24);
    if (p.prefix_length() > 32) return bad(f + ".prefix_length", "must be 1..32");
    if (!p.gateway().empty() && !net::parse_ipv4(p.gateway()))
      return bad(f + ".gateway", absl::StrCat("'", p.gateway(), "' is not an IPv4 address"));
    if (p.vlan() > 4094) return bad(f + ".vlan", "must be 0..4094");
    if (p.rx_queues() == 0) p.set_rx_queues(1);
    if (p.rx_queues() > 16) return bad(f + ".rx_queues", "must be 1..16");
    if (p.exception_tap().size() > 15)
      return bad(f + ".exception_tap", "interface names are at most 15 characters");
    for (int j = 0; j < p.extra_addresses_size(); ++j) {
      auto x = net::parse_ipv4(p.extra_addresses(j));
      if (!x)
        return bad(absl::StrCat(f, ".extra_addresses[", j, "]"),
                   absl::StrCat("'", p.extra_addresses(j), "' is not an IPv4 address"));
      if (!addrs.insert(*x).second)
        return bad(absl::StrCat(f, ".extra_addresses[", j, "]"), "address used twice");
    }
  }
  if (addrs.size() > 16) return bad("ports", "at most 16 relay addresses in all");
  auto& m = *cfg.mutable_media();
  if (m.port_min() == 0) m.set_port_min(20000);
  if (m.port_max() == 0) m.set_port_max(31000);
  if (m.port_min() > 65535 || m.port_max() > 65535 || m.port_min() > m.port_max())
    return bad("media", "port_min..port_max must be a range within 1..65535");
  if (m.max_flows() == 0) m.set_max_flows(65536);
  if (m.max_flows() > (16u << 20)) return bad("media.max_flows", "at most 16777216");
  if (cfg.lcores_size() == 1) return bad("lcores", "need a control lcore and at least one worker");
  if (cfg.lcores_size() > 17) return bad("lcores", "at most 16 workers");
  for (int i = 0; i < cfg.lcores_size(); ++i)
    if (cfg.lcores(i) >= 1024) return bad(absl::StrCat("lcores[", i, "]"), "not a CPU number");
  if (cfg.grpc_listen().empty()) cfg.set_grpc_listen("unix:/run/sluice/dataplane.sock");
  for (int i = 0; i < cfg.static_neighbors_size(); ++i) {
    auto& n = cfg.static_neighbors(i);
    std::string f = absl::StrCat("static_neighbors[", i, "]");
    if (!net::parse_ipv4(n.address())) return bad(f + ".address", "not an IPv4 address");
    if (!net::parse_mac(n.mac())) return bad(f + ".mac", "not a MAC address (aa:bb:cc:dd:ee:ff)");
    if (!names.count(n.port())) return bad(f + ".port", absl::StrCat("no port named '", n.port(), "'"));
  }
  if (cfg.routes_size() > 32) return bad("routes", "at most 32 static routes");
  for (int i = 0; i < cfg.routes_size(); ++i) {
    auto& r = cfg.routes(i);
    std::string f = absl::StrCat("routes[", i, "]");
    if (!net::parse_prefix(r.prefix())) return bad(f + ".prefix", "not a prefix (a.b.c.d/len)");
    if (!net::parse_ipv4(r.next_hop())) return bad(f + ".next_hop", "not an IPv4 address");
    if (!names.count(r.port())) return bad(f + ".port", absl::StrCat("no port named '", r.port(), "'"));
  }
  if (cfg.mbufs() == 0) cfg.set_mbufs(16383);
  if (cfg.rx_ring_size() == 0) cfg.set_rx_ring_size(1024);
  if (cfg.tx_ring_size() == 0) cfg.set_tx_ring_size(1024);
  if (!cfg.has_idle_sleep_max_us()) cfg.set_idle_sleep_max_us(200);
  if (cfg.idle_sleep_max_us() > 100000) return bad("idle_sleep_max_us", "at most 100000");
  return absl::OkStatus();
}

}  // namespace sluice
