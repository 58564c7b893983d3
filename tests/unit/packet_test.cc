// Table-driven tests of the packet core on synthetic frames: input frame,
// flow set-up, expected verdict and expected output fields.
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/core/packet.h"
#include "tests/unit/frames.h"

using namespace sluice;
using sluice::test::UdpFrame;

namespace {

const net::Mac kOutMac = {0x02, 0, 0, 0, 0, 0x01};
const net::Mac kInMac = {0x02, 0, 0, 0, 0, 0x02};
const net::Mac kPhoneMac = {0xaa, 0xaa, 0xaa, 0, 0, 0x10};
const net::Mac kPbxMac = {0xbb, 0xbb, 0xbb, 0, 0, 0x10};
const uint32_t kRelayOut = *net::parse_ipv4("192.0.2.1");
const uint32_t kRelayIn = *net::parse_ipv4("198.51.100.1");
const uint32_t kPhone = *net::parse_ipv4("192.0.2.10");
const uint32_t kPhone2 = *net::parse_ipv4("192.0.2.11");
const uint32_t kPbx = *net::parse_ipv4("198.51.100.10");
constexpr uint64_t kHz = 1000000000;

struct Rig {
  std::unique_ptr<FlowTable> flows = std::make_unique<FlowTable>(64, nullptr);
  std::unique_ptr<NeighborTable> neigh = std::make_unique<NeighborTable>();
  DataplaneView dp;
  uint64_t now = kHz;

  Rig() {
    dp.flows = flows.get();
    dp.neighbors = neigh.get();
    dp.tsc_hz = kHz;
    dp.nports = 2;
    dp.ports[0] = PortInfo{kOutMac, kRelayOut, 24, 0, 0, true};
    dp.ports[1] = PortInfo{kInMac, kRelayIn, 24, 0, 0, true};
    dp.address_port[flows->add_address(kRelayOut)] = 0;
    dp.address_port[flows->add_address(kRelayIn)] = 1;
    neigh->set(kPhone, kPhoneMac, 0, NeighborTable::kReachable, 0);
    neigh->set(kPhone2, kPhoneMac, 0, NeighborTable::kReachable, 0);
    neigh->set(kPbx, kPbxMac, 1, NeighborTable::kReachable, 0);
  }

  // One flow: keyed at ip:port, sent from src:sport to dst:dport, expecting
  // expect:eport, out of port `egress`.
  static FlowConfig flow(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                         uint32_t expect, uint16_t eport, uint8_t egress) {
    FlowConfig c;
    c.src_ip = src;
    c.src_port = sport;
    c.dst_ip = dst;
    c.dst_port = dport;
    c.expect_ip = expect;
    c.expect_port = eport;
    c.egress_port = egress;
    return c;
  }

  // The stream pair the lab programs: phone <-> out:20000 / in:20002 <-> PBX.
  void pair(Latch latch = Latch::kFirst, uint8_t max_senders = 1,
            std::function<void(FlowConfig&)> tweak = nullptr) {
    FlowConfig a = flow(kRelayIn, 20002, kPbx, 5000, kPhone, 4000, 1);
    FlowConfig b = flow(kRelayOut, 20000, kPhone, 4000, kPbx, 5000, 0);
    for (FlowConfig* c : {&a, &b}) {
      c->latch = latch;
      c->max_senders = max_senders;
      if (tweak) tweak(*c);
    }
    REQUIRE(flows->upsert(kRelayOut, 20000, a, 1, 1, 60000) == FlowTable::Result::kCreated);
    REQUIRE(flows->upsert(kRelayIn, 20002, b, 2, 1, 60000) == FlowTable::Result::kCreated);
  }

  struct Result {
    Outcome o;
    std::vector<uint8_t> out;  // the frame to send on kForward
  };
  Result run(const std::vector<uint8_t>& frame, uint8_t in_port = 0, uint8_t worker = 0) {
    std::vector<uint8_t> buf(128 + frame.size());
    if (!frame.empty()) std::memcpy(buf.data() + 128, frame.data(), frame.size());
    Result r;
    r.o = process_frame(dp, buf.data(), 128, uint32_t(frame.size()), in_port, worker, now);
    if (r.o.action == Action::kForward)
      r.out.assign(buf.begin() + r.o.off, buf.begin() + r.o.off + r.o.len);
    return r;
  }
};

UdpFrame from_phone(uint16_t sport = 4000, uint32_t src = kPhone, uint16_t dport = 20000) {
  UdpFrame f;
  f.dst_mac = kOutMac;
  f.src_mac = kPhoneMac;
  f.src_ip = src;
  f.dst_ip = kRelayOut;
  f.sport = sport;
  f.dport = dport;
  f.payload = test::rtp_payload(0x1111, 1, 160);
  return f;
}

UdpFrame from_pbx() {
  UdpFrame f;
  f.dst_mac = kInMac;
  f.src_mac = kPbxMac;
  f.src_ip = kPbx;
  f.dst_ip = kRelayIn;
  f.sport = 5000;
  f.dport = 20002;
  f.payload = test::rtp_payload(0x2222, 1, 160);
  return f;
}

struct Parsed {
  net::Mac dst, src;
  int vlan = -1;
  uint32_t sip, dip;
  uint16_t sport, dport;
  uint8_t ttl, tos;
  bool ip_ok, udp_ok;
  std::vector<uint8_t> payload;
};

Parsed parse_out(const std::vector<uint8_t>& f) {
  Parsed p{};
  std::memcpy(p.dst.data(), f.data(), 6);
  std::memcpy(p.src.data(), f.data() + 6, 6);
  size_t l2 = 14;
  if (f[12] == 0x81 && f[13] == 0) {
    p.vlan = (f[14] << 8 | f[15]) & 0xfff;
    l2 = 18;
  }
  size_t ip = l2, udp = l2 + 20;
  p.ttl = f[ip + 8];
  p.tos = f[ip + 1];
  p.sip = net::load32(&f[ip + 12]);
  p.dip = net::load32(&f[ip + 16]);
  p.ip_ok = test::naive_sum(f, ip, 20) == 0xffff;
  p.sport = net::load16(&f[udp]);
  p.dport = net::load16(&f[udp + 2]);
  p.udp_ok = UdpFrame::udp_checksum(f, ip, udp) == net::load16(&f[udp + 6]);
  p.payload.assign(f.begin() + long(udp) + 8, f.end());
  return p;
}

}  // namespace

TEST_CASE("RTP from the teleworker is relayed to the PBX, rewritten", "[packet]") {
  Rig r;
  r.pair();
  UdpFrame in = from_phone();
  in.udp_csum_unfinished = true;  // as af_packet delivers from a veth
  auto res = r.run(in.build());
  REQUIRE(res.o.action == Action::kForward);
  CHECK(res.o.out_port == 1);
  CHECK(res.o.event.kind == EventKind::kLatched);
  CHECK(res.o.event.ip == kPhone);
  Parsed p = parse_out(res.out);
  CHECK(p.dst == kPbxMac);
  CHECK(p.src == kInMac);
  CHECK(p.vlan == -1);
  CHECK(p.sip == kRelayIn);
  CHECK(p.dip == kPbx);
  CHECK(p.sport == 20002);
  CHECK(p.dport == 5000);
  CHECK(p.ttl == 63);
  CHECK(p.tos == 46 << 2);
  CHECK(p.ip_ok);
  CHECK(p.udp_ok);
  CHECK(p.payload == in.payload);
  FlowSlot* s = r.flows->lookup(kRelayOut, 20000);
  CHECK(s->st.packets.load() == 1);
  CHECK(s->st.bytes.load() == 20 + 8 + 172);
  CHECK(s->st.last_ssrc.load() == 0x1111);
}

TEST_CASE("the reverse direction goes to the latched (NATed) source", "[packet][latch]") {
  Rig r;
  r.pair();
  // The phone's NAT maps its announced port 4000 to 61000.
  REQUIRE(r.run(from_phone(61000).build()).o.action == Action::kForward);
  auto res = r.run(from_pbx().build(), 1);
  REQUIRE(res.o.action == Action::kForward);
  Parsed p = parse_out(res.out);
  CHECK(p.dip == kPhone);
  CHECK(p.dport == 61000);
  CHECK(p.sip == kRelayOut);
  CHECK(p.sport == 20000);
  CHECK(p.dst == kPhoneMac);
  CHECK(p.src == kOutMac);
  CHECK(p.udp_ok);
}

TEST_CASE("before any latch the reverse direction uses the signalled address", "[packet][latch]") {
  Rig r;
  r.pair();
  auto res = r.run(from_pbx().build(), 1);
  REQUIRE(res.o.action == Action::kForward);
  Parsed p = parse_out(res.out);
  CHECK(p.dip == kPhone);
  CHECK(p.dport == 4000);
}

TEST_CASE("latching policies", "[packet][latch]") {
  struct Step {
    uint32_t ip;
    uint16_t port;
    Action action;
    EventKind event;
  };
  struct Case {
    const char* name;
    Latch latch;
    uint8_t max;
    std::vector<Step> steps;
  };
  const Action F = Action::kForward, D = Action::kDrop;
  const EventKind N = EventKind::kNone, L = EventKind::kLatched, C = EventKind::kPeerChanged;
  std::vector<Case> cases = {
      {"first sender locks", Latch::kFirst, 1,
       {{kPhone, 4000, F, L}, {kPhone, 4000, F, N}, {kPhone2, 4000, D, N}, {kPhone, 4001, D, N},
        {kPhone, 4000, F, N}}},
      {"allow-N accepts handover up to N", Latch::kAllowN, 2,
       {{kPhone, 4000, F, L}, {kPhone2, 7000, F, C}, {kPhone2, 7000, F, N}, {kPhone, 4000, F, C},
        {kPhone, 4444, D, N}}},
      {"strict takes only the expected peer", Latch::kStrict, 1,
       {{kPhone, 4001, D, N}, {kPhone2, 4000, D, N}, {kPhone, 4000, F, L}, {kPhone, 4000, F, N}}},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      Rig r;
      r.pair(c.latch, c.max);
      int i = 0;
      for (const Step& s : c.steps) {
        INFO("step " << i++);
        auto res = r.run(from_phone(s.port, s.ip).build());
        CHECK(res.o.action == s.action);
        if (s.action == D) CHECK(res.o.drop == Drop::kLatchRejected);
        CHECK(res.o.event.kind == s.event);
      }
    }
  }
  SECTION("after handover the PBX's media follows the new address") {
    Rig r;
    r.pair(Latch::kAllowN, 4);
    r.run(from_phone(4000, kPhone).build());
    r.run(from_phone(7000, kPhone2).build());
    auto res = r.run(from_pbx().build(), 1);
    REQUIRE(res.o.action == Action::kForward);
    Parsed p = parse_out(res.out);
    CHECK(p.dip == kPhone2);
    CHECK(p.dport == 7000);
    FlowSlot* s = r.flows->lookup(kRelayOut, 20000);
    CHECK(s->st.nsenders.load() == 2);
  }
  SECTION("rejections are counted on the flow") {
    Rig r;
    r.pair();
    r.run(from_phone().build());
    r.run(from_phone(1, kPhone2).build());
    r.run(from_phone(2, kPhone2).build());
    FlowSlot* s = r.flows->lookup(kRelayOut, 20000);
    CHECK(s->st.drops[flow_drop_index(Drop::kLatchRejected)].load() == 2);
    CHECK(s->st.packets.load() == 1);
  }
}

TEST_CASE("TTL and DSCP policies", "[packet]") {
  SECTION("decrement drops at TTL 1") {
    Rig r;
    r.pair();
    UdpFrame f = from_phone();
    f.ttl = 1;
    auto res = r.run(f.build());
    CHECK(res.o.action == Action::kDrop);
    CHECK(res.o.drop == Drop::kTtlExpired);
  }
  SECTION("reset sets the configured TTL whatever arrived") {
    Rig r;
    r.pair(Latch::kFirst, 1, [](FlowConfig& c) {
      c.ttl_mode = TtlMode::kReset;
      c.ttl_value = 64;
    });
    for (uint8_t ttl : {uint8_t(1), uint8_t(3), uint8_t(255)}) {
      UdpFrame f = from_phone();
      f.ttl = ttl;
      auto res = r.run(f.build());
      REQUIRE(res.o.action == Action::kForward);
      CHECK(parse_out(res.out).ttl == 64);
      CHECK(parse_out(res.out).ip_ok);
    }
  }
  SECTION("DSCP is rewritten, ECN bits kept") {
    Rig r;
    r.pair(Latch::kFirst, 1, [](FlowConfig& c) { c.dscp = 34; });
    UdpFrame f = from_phone();
    f.tos = 0x03;  // CE
    auto res = r.run(f.build());
    REQUIRE(res.o.action == Action::kForward);
    CHECK(parse_out(res.out).tos == (34 << 2 | 3));
  }
}

TEST_CASE("VLAN tags on ingress and egress", "[packet][vlan]") {
  Rig r;
  r.dp.ports[0].vlan = 100;
  r.dp.ports[1].vlan = 200;
  r.pair();
  UdpFrame f = from_phone();
  f.vlan = 100;
  auto res = r.run(f.build());
  REQUIRE(res.o.action == Action::kForward);
  Parsed p = parse_out(res.out);
  CHECK(p.vlan == 200);
  CHECK(p.udp_ok);
  CHECK(p.payload == f.payload);
  SECTION("a frame on the wrong VLAN is not ours") {
    f.vlan = 101;
    CHECK(r.run(f.build()).o.drop == Drop::kNotForUs);
    f.vlan = -1;
    CHECK(r.run(f.build()).o.drop == Drop::kNotForUs);
  }
  SECTION("tagged in, untagged out shrinks the frame by 4 bytes") {
    r.dp.ports[1].vlan = 0;
    auto res2 = r.run(f.build());
    REQUIRE(res2.o.action == Action::kForward);
    CHECK(res2.out.size() == f.build().size() - 4);
    CHECK(parse_out(res2.out).vlan == -1);
  }
}

TEST_CASE("classification of what is not relayed media", "[packet][classify]") {
  Rig r;
  r.pair();
  struct Case {
    const char* name;
    std::function<void(UdpFrame&)> mutate;
    Action action;
    Drop drop;
  };
  std::vector<Case> cases = {
      {"SIP on 5060 goes to the kernel", [](UdpFrame& f) { f.dport = 5060; }, Action::kPunt, Drop::kMalformed},
      {"TCP goes to the kernel", [](UdpFrame& f) { f.proto = net::kProtoTcp; }, Action::kPunt, Drop::kMalformed},
      {"ICMP goes to the kernel", [](UdpFrame& f) { f.proto = net::kProtoIcmp; }, Action::kPunt, Drop::kMalformed},
      {"media port without flow is dropped", [](UdpFrame& f) { f.dport = 20010; }, Action::kDrop, Drop::kNoFlow},
      {"bottom of the media range", [](UdpFrame& f) { f.dport = 20000 - 1; }, Action::kPunt, Drop::kMalformed},
      {"top of the media range", [](UdpFrame& f) { f.dport = 31000; }, Action::kDrop, Drop::kNoFlow},
      {"another MAC is not ours", [](UdpFrame& f) { f.dst_mac[5] = 0x77; }, Action::kDrop, Drop::kNotForUs},
      {"another IP is not ours", [](UdpFrame& f) { f.dst_ip = kPbx; }, Action::kDrop, Drop::kNotForUs},
      {"bad IP header checksum", [](UdpFrame& f) { f.bad_ip_csum = true; }, Action::kDrop, Drop::kBadIpChecksum},
      {"first fragment into the media range", [](UdpFrame& f) { f.frag = 0x2000; }, Action::kDrop, Drop::kFragment},
      {"later fragment goes to the kernel", [](UdpFrame& f) { f.frag = 0x0010; }, Action::kPunt, Drop::kMalformed},
      {"broadcast goes to the kernel",
       [](UdpFrame& f) {
         f.dst_mac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
         f.dst_ip = 0xffffffff;
       },
       Action::kPunt, Drop::kMalformed},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      UdpFrame f = from_phone();
      c.mutate(f);
      auto res = r.run(f.build());
      CHECK(res.o.action == c.action);
      if (c.action == Action::kDrop) CHECK(res.o.drop == c.drop);
    }
  }
  SECTION("ARP goes to the control lcore") {
    std::vector<uint8_t> arp(42, 0);
    std::memset(arp.data(), 0xff, 6);
    arp[12] = 0x08;
    arp[13] = 0x06;
    CHECK(r.run(arp).o.action == Action::kArp);
  }
  SECTION("IPv6 goes to the kernel") {
    std::vector<uint8_t> v6(80, 0);
    std::memcpy(v6.data(), kOutMac.data(), 6);
    v6[12] = 0x86;
    v6[13] = 0xdd;
    CHECK(r.run(v6).o.action == Action::kPunt);
  }
  SECTION("without an exception path, non-media traffic is dropped and counted") {
    r.dp.ports[0].exception = false;
    UdpFrame f = from_phone();
    f.dport = 5060;
    auto res = r.run(f.build());
    CHECK(res.o.action == Action::kDrop);
    CHECK(res.o.drop == Drop::kNoExceptionPath);
  }
}

TEST_CASE("truncated and malformed frames never forward and never crash", "[packet][malformed]") {
  Rig r;
  r.pair();
  std::vector<uint8_t> good = from_phone().build();
  for (size_t len = 0; len < good.size(); ++len) {
    std::vector<uint8_t> t(good.begin(), good.begin() + long(len));
    auto res = r.run(t);
    INFO("length " << len);
    CHECK(res.o.action == Action::kDrop);
  }
  SECTION("IP total length beyond the frame") {
    std::vector<uint8_t> f = good;
    f[16] = 0x0f;  // total length 0x0fxx
    CHECK(r.run(f).o.drop == Drop::kMalformed);
  }
  SECTION("IHL below 5") {
    std::vector<uint8_t> f = good;
    f[14] = 0x44;
    CHECK(r.run(f).o.drop == Drop::kMalformed);
  }
  SECTION("UDP length beyond the IP payload") {
    UdpFrame u = from_phone();
    std::vector<uint8_t> f = u.build();
    f[14 + 20 + 4] = 0x7f;
    CHECK(r.run(f).o.drop == Drop::kMalformed);
  }
  SECTION("random corruption of a valid frame") {
    std::mt19937 rng(12345);
    for (int i = 0; i < 20000; ++i) {
      std::vector<uint8_t> f = good;
      int flips = 1 + int(rng() % 4);
      for (int k = 0; k < flips; ++k) f[rng() % f.size()] = uint8_t(rng());
      f.resize(rng() % 4 == 0 ? rng() % f.size() : f.size());
      auto res = r.run(f);
      if (res.o.action == Action::kForward) CHECK(parse_out(res.out).ip_ok);
    }
  }
}

TEST_CASE("Ethernet padding is trimmed from relayed frames", "[packet]") {
  Rig r;
  r.pair();
  UdpFrame f = from_phone();
  f.payload = test::rtp_payload(1, 1, 2);  // tiny: 14+20+8+14 = 56 bytes
  f.pad_to = 60;
  auto res = r.run(f.build());
  REQUIRE(res.o.action == Action::kForward);
  CHECK(res.out.size() == 56);
  CHECK(parse_out(res.out).udp_ok);
}

TEST_CASE("next hop resolution", "[packet][neighbor]") {
  Rig r;
  r.pair();
  SECTION("an unresolved next hop drops and asks for resolution") {
    r.neigh = std::make_unique<NeighborTable>();
    r.dp.neighbors = r.neigh.get();
    auto res = r.run(from_phone().build());
    CHECK(res.o.drop == Drop::kNoNeighbor);
    // The first packet also latched; the latch event wins, the next packet
    // carries the resolve request.
    auto res2 = r.run(from_phone().build());
    CHECK(res2.o.event.kind == EventKind::kResolve);
    CHECK(res2.o.event.ip == kPbx);
    CHECK(res2.o.event.port == 1);
  }
  SECTION("off-link destinations go to the gateway, static routes win") {
    uint32_t far = *net::parse_ipv4("203.0.113.50");
    uint32_t gw = *net::parse_ipv4("198.51.100.254");
    uint32_t rt = *net::parse_ipv4("198.51.100.253");
    r.dp.ports[1].gateway = gw;
    CHECK(next_hop(r.dp, 1, kPbx) == kPbx);
    CHECK(next_hop(r.dp, 1, far) == gw);
    r.dp.routes[0] = RouteEntry{*net::parse_ipv4("203.0.113.0"), net::prefix_mask(24), rt, 1};
    r.dp.nroutes = 1;
    CHECK(next_hop(r.dp, 1, far) == rt);
    r.dp.ports[1].gateway = 0;
    CHECK(next_hop(r.dp, 1, *net::parse_ipv4("203.0.114.1")) == 0);
  }
  SECTION("another port's network or static route wins over the egress port's gateway") {
    const uint32_t lan = *net::parse_ipv4("198.51.100.20");
    const uint32_t branch = *net::parse_ipv4("10.20.0.5");
    const uint32_t lan_rt = *net::parse_ipv4("198.51.100.254");
    const uint32_t gw = *net::parse_ipv4("192.0.2.254");
    r.dp.ports[0].gateway = gw;
    uint8_t via = 9;
    CHECK(next_hop(r.dp, 0, kPhone, &via) == kPhone);  // on the egress port's own network
    CHECK(via == 0);
    CHECK(next_hop(r.dp, 0, lan, &via) == lan);  // on the inside network
    CHECK(via == 1);
    CHECK(next_hop(r.dp, 0, branch, &via) == gw);  // nowhere else: the Internet
    CHECK(via == 0);
    r.dp.routes[0] = RouteEntry{*net::parse_ipv4("10.20.0.0"), net::prefix_mask(16), lan_rt, 1};
    r.dp.nroutes = 1;
    CHECK(next_hop(r.dp, 0, branch, &via) == lan_rt);  // a LAN subnet behind a router
    CHECK(via == 1);
    // The same prefix routed on the egress port too: the egress port keeps it.
    r.dp.routes[1] = RouteEntry{*net::parse_ipv4("10.20.0.0"), net::prefix_mask(16), gw, 0};
    r.dp.nroutes = 2;
    CHECK(next_hop(r.dp, 0, branch, &via) == gw);
    CHECK(via == 0);
  }
}

TEST_CASE("a LAN device that reached the public address gets its media back on the inside",
          "[packet][hairpin]") {
  // NAT loopback at the network edge: the device's call is an outside leg
  // (it sent to 192.0.2.1), but its address is on the inside network.
  Rig r;
  const uint32_t lan = *net::parse_ipv4("198.51.100.20");
  const net::Mac lan_mac{0x02, 0, 0, 0, 0, 0x20};
  r.neigh->set(lan, lan_mac, 1, NeighborTable::kReachable, 0);
  REQUIRE(r.flows->upsert(kRelayOut, 20000, Rig::flow(kRelayIn, 20002, kPbx, 5000, lan, 4000, 1),
                          1, 1, 60000) == FlowTable::Result::kCreated);
  REQUIRE(r.flows->upsert(kRelayIn, 20002, Rig::flow(kRelayOut, 20000, lan, 4000, kPbx, 5000, 0),
                          2, 1, 60000) == FlowTable::Result::kCreated);
  UdpFrame in = from_phone(4000, lan);
  in.dst_mac = kInMac;  // it arrives on the inside port
  auto up = r.run(in.build(), 1);
  REQUIRE(up.o.action == Action::kForward);
  CHECK(up.o.out_port == 1);
  CHECK(parse_out(up.out).dip == kPbx);
  auto down = r.run(from_pbx().build(), 1);
  REQUIRE(down.o.action == Action::kForward);
  CHECK(down.o.out_port == 1);  // its flow's egress is the outside port
  CHECK_FALSE(down.o.hairpin);
  Parsed p = parse_out(down.out);
  CHECK(p.dst == lan_mac);
  CHECK(p.src == kInMac);
  CHECK(p.sip == kRelayOut);  // from the address it called
  CHECK(p.sport == 20000);
  CHECK(p.dip == lan);
  CHECK(p.dport == 4000);
  CHECK(p.udp_ok);
}

TEST_CASE("a flow owned by another worker is handed off untouched", "[packet]") {
  Rig r;
  r.pair(Latch::kFirst, 1, [](FlowConfig& c) { c.worker = 1; });
  std::vector<uint8_t> f = from_phone().build();
  auto res = r.run(f, 0, 0);
  CHECK(res.o.action == Action::kHandoff);
  CHECK(res.o.worker == 1);
  FlowSlot* s = r.flows->lookup(kRelayOut, 20000);
  CHECK(s->st.latched.load() == 0);
  CHECK(r.run(f, 0, 1).o.action == Action::kForward);
}

namespace {

// Two calls of one teleworker-to-teleworker call through a PBX that passes
// media addresses through (direct media): each call's inside leg names the
// other call's inside port, so media crosses the relay's inside address.
//   phone A <-> out:20000 / in:20002 <-> in:20006 / out:20004 <-> phone B
void loopback_calls(Rig& r, std::function<void(FlowConfig&)> tweak = nullptr) {
  auto flow = [&](uint32_t ip, uint16_t port, uint32_t src, uint16_t sport, uint32_t dst,
                  uint16_t dport, uint32_t expect, uint16_t eport, uint8_t egress, uint64_t cookie) {
    FlowConfig c = Rig::flow(src, sport, dst, dport, expect, eport, egress);
    if (tweak) tweak(c);
    REQUIRE(r.flows->upsert(ip, port, c, cookie, 1, 60000) == FlowTable::Result::kCreated);
  };
  flow(kRelayOut, 20000, kRelayIn, 20002, kRelayIn, 20006, kPhone, 4000, 1, 1);
  flow(kRelayIn, 20002, kRelayOut, 20000, kPhone, 4000, kRelayIn, 20006, 0, 2);
  flow(kRelayIn, 20006, kRelayOut, 20004, kPhone2, 4002, kRelayIn, 20002, 0, 3);
  flow(kRelayOut, 20004, kRelayIn, 20006, kRelayIn, 20002, kPhone2, 4002, 1, 4);
}

}  // namespace

TEST_CASE("media relayed to our own address comes back in (NAT loopback)", "[packet][hairpin]") {
  Rig r;
  SECTION("phone A to phone B through both calls' flows") {
    loopback_calls(r);
    UdpFrame in = from_phone();
    auto first = r.run(in.build());
    REQUIRE(first.o.action == Action::kForward);
    CHECK(first.o.hairpin);
    CHECK(first.o.out_port == 1);
    Parsed p = parse_out(first.out);
    CHECK(p.dst == kInMac);  // as if received on the inside port
    CHECK(p.sip == kRelayIn);
    CHECK(p.sport == 20002);
    CHECK(p.dip == kRelayIn);
    CHECK(p.dport == 20006);
    CHECK(p.ip_ok);
    CHECK(p.udp_ok);
    // The worker feeds it back in on the inside port.
    std::vector<uint8_t> buf(128 + first.out.size());
    std::memcpy(buf.data() + 128, first.out.data(), first.out.size());
    Outcome o = process_frame(r.dp, buf.data(), 128, uint32_t(first.out.size()), 1, 0, r.now, true);
    REQUIRE(o.action == Action::kForward);
    CHECK_FALSE(o.hairpin);
    CHECK(o.out_port == 0);
    CHECK(o.event.kind == EventKind::kLatched);  // call 2's inside flow latched on our own port
    CHECK(o.event.ip == kRelayIn);
    CHECK(o.event.peer_port == 20002);
    p = parse_out(std::vector<uint8_t>(buf.begin() + o.off, buf.begin() + o.off + o.len));
    CHECK(p.dst == kPhoneMac);
    CHECK(p.src == kOutMac);
    CHECK(p.sip == kRelayOut);
    CHECK(p.sport == 20004);
    CHECK(p.dip == kPhone2);
    CHECK(p.dport == 4002);
    CHECK(p.ttl == 62);  // one hop per relay pass
    CHECK(p.ip_ok);
    CHECK(p.udp_ok);
    CHECK(p.payload == in.payload);
    CHECK(r.flows->lookup(kRelayOut, 20000)->st.packets.load() == 1);
    CHECK(r.flows->lookup(kRelayIn, 20006)->st.packets.load() == 1);
  }
  SECTION("the inside port's VLAN tag is what the frame comes back with") {
    r.dp.ports[1].vlan = 7;
    loopback_calls(r);
    auto first = r.run(from_phone().build());
    REQUIRE(first.o.action == Action::kForward);
    REQUIRE(first.o.hairpin);
    CHECK(parse_out(first.out).vlan == 7);
    std::vector<uint8_t> buf(128 + first.out.size());
    std::memcpy(buf.data() + 128, first.out.data(), first.out.size());
    Outcome o = process_frame(r.dp, buf.data(), 128, uint32_t(first.out.size()), 1, 0, r.now, true);
    CHECK(o.action == Action::kForward);
    CHECK(o.out_port == 0);
  }
  SECTION("no neighbour is asked for our own address") {
    loopback_calls(r);
    auto first = r.run(from_phone().build());
    CHECK(first.o.action == Action::kForward);
    CHECK(first.o.event.kind != EventKind::kResolve);
    CHECK_FALSE(r.neigh->get(kRelayIn).has_value());
  }
  SECTION("a frame already relayed to ourselves is not relayed to ourselves again") {
    loopback_calls(r);
    // Offered on the outside port as if it were new there: call 1's flow
    // again would relay it to ourselves a second time.
    UdpFrame again = from_phone();
    std::vector<uint8_t> f = again.build();
    std::vector<uint8_t> b2(128 + f.size());
    std::memcpy(b2.data() + 128, f.data(), f.size());
    Outcome o = process_frame(r.dp, b2.data(), 128, uint32_t(f.size()), 0, 0, r.now, true);
    CHECK(o.action == Action::kDrop);
    CHECK(o.drop == Drop::kHairpinLoop);
    // Counted per worker, not per flow (the flow slot stays within 256 B).
    CHECK(flow_drop_index(Drop::kHairpinLoop) == -1);
  }
  SECTION("a hairpinned frame for another worker's flow is handed off") {
    loopback_calls(r, [](FlowConfig& c) { c.worker = c.src_ip == kRelayOut ? 1 : 0; });
    auto first = r.run(from_phone().build());
    REQUIRE(first.o.action == Action::kForward);
    REQUIRE(first.o.hairpin);
    std::vector<uint8_t> buf(128 + first.out.size());
    std::memcpy(buf.data() + 128, first.out.data(), first.out.size());
    Outcome o = process_frame(r.dp, buf.data(), 128, uint32_t(first.out.size()), 1, 0, r.now, true);
    CHECK(o.action == Action::kHandoff);
    CHECK(o.worker == 1);
  }
}

TEST_CASE("the policer admits burst packets then one per interval", "[packet][policer]") {
  Rig r;
  r.pair(Latch::kFirst, 1, [](FlowConfig& c) {
    c.police_rate = 50;
    c.police_burst = 3;
  });
  std::vector<uint8_t> f = from_phone().build();
  int fwd = 0;
  for (int i = 0; i < 10; ++i) fwd += r.run(f).o.action == Action::kForward;
  CHECK(fwd == 3);
  r.now += kHz / 50;  // one interval later: one more
  CHECK(r.run(f).o.action == Action::kForward);
  CHECK(r.run(f).o.drop == Drop::kPoliced);
  FlowSlot* s = r.flows->lookup(kRelayOut, 20000);
  CHECK(s->st.drops[flow_drop_index(Drop::kPoliced)].load() == 8);
}

TEST_CASE("RTP sequence gaps and SSRC changes are observed", "[packet][rtp]") {
  Rig r;
  r.pair();
  auto send = [&](uint32_t ssrc, uint16_t seq) {
    UdpFrame f = from_phone();
    f.payload = test::rtp_payload(ssrc, seq, 160);
    REQUIRE(r.run(f.build()).o.action == Action::kForward);
  };
  FlowSlot* s = r.flows->lookup(kRelayOut, 20000);
  send(7, 65533);
  send(7, 65534);
  send(7, 1);  // across the wrap: 65535 and 0 missing
  CHECK(s->st.seq_gaps.load() == 2);
  send(8, 100);  // new SSRC: no gap
  send(8, 101);
  CHECK(s->st.seq_gaps.load() == 2);
  CHECK(s->st.last_ssrc.load() == 8);
  CHECK(s->st.last_seq.load() == 101);
}
