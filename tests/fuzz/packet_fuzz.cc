// libFuzzer target for the packet core: any bytes as a frame on either port,
// against a table with a flow pair, processed by the owning worker. Build
// with clang: meson setup build-fuzz -Dfuzz=true (CXX=clang++), then
// build-fuzz/tests/fuzz_packet -max_total_time=60. Without libFuzzer the
// same file builds with replay_main.cc, which runs files given as arguments.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/core/packet.h"

using namespace sluice;

namespace {
struct Rig {
  FlowTable flows{16, nullptr};
  NeighborTable neigh;
  DataplaneView dp;
  Rig() {
    uint32_t out = *net::parse_ipv4("192.0.2.1"), in = *net::parse_ipv4("198.51.100.1");
    dp.flows = &flows;
    dp.neighbors = &neigh;
    dp.nports = 2;
    dp.ports[0] = PortInfo{{2, 0, 0, 0, 0, 1}, out, 24, 0, 0, true};
    dp.ports[1] = PortInfo{{2, 0, 0, 0, 0, 2}, in, 24, 0, 100, true};
    dp.address_port[flows.add_address(out)] = 0;
    dp.address_port[flows.add_address(in)] = 1;
    neigh.set(*net::parse_ipv4("192.0.2.10"), {0xaa, 0, 0, 0, 0, 1}, 0, NeighborTable::kReachable, 0);
    neigh.set(*net::parse_ipv4("198.51.100.10"), {0xbb, 0, 0, 0, 0, 1}, 1, NeighborTable::kReachable, 0);
    FlowConfig a;
    a.src_ip = in;
    a.src_port = 20002;
    a.dst_ip = *net::parse_ipv4("198.51.100.10");
    a.dst_port = 5000;
    a.egress_port = 1;
    a.latch = Latch::kAllowN;
    a.max_senders = 4;
    a.police_rate = 1000;
    a.police_burst = 10;
    FlowConfig b = a;
    b.src_ip = out;
    b.src_port = 20000;
    b.dst_ip = *net::parse_ipv4("192.0.2.10");
    b.egress_port = 0;
    b.kind = FlowKind::kMux;
    flows.upsert(out, 20000, a, 0, 1, 1000);
    flows.upsert(in, 20002, b, 0, 1, 1000);
    // NAT loopback: out:20004 relays to our own in:20006, which relays on;
    // in:20008 relays to itself (a loop the hairpin rule must stop).
    FlowConfig c = a;
    c.src_port = 20010;
    c.dst_ip = in;
    c.dst_port = 20006;
    flows.upsert(out, 20004, c, 0, 1, 1000);
    FlowConfig d = b;
    d.src_port = 20004;
    flows.upsert(in, 20006, d, 0, 1, 1000);
    FlowConfig e = a;
    e.src_port = 20008;
    e.dst_ip = in;
    e.dst_port = 20008;
    flows.upsert(in, 20008, e, 0, 1, 1000);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig* rig = new Rig();
  static uint64_t now = 1;
  if (size < 1 || size > 9000) return 0;
  std::vector<uint8_t> buf(128 + size - 1);
  std::memcpy(buf.data() + 128, data + 1, size - 1);
  Outcome o = process_frame(rig->dp, buf.data(), 128, uint32_t(size - 1), data[0] & 1, 0,
                            now += 1000, data[0] & 2);
  if (o.action == Action::kForward && (o.off + o.len > buf.size() || o.len < 14)) __builtin_trap();
  if (o.action == Action::kForward && o.hairpin) {
    // What the worker does: take it back in on the port it names, once.
    if (data[0] & 2) __builtin_trap();
    Outcome again = process_frame(rig->dp, buf.data(), o.off, o.len, o.out_port, 0, now, true);
    if (again.action == Action::kForward &&
        (again.hairpin || again.off + again.len > buf.size() || again.len < 14))
      __builtin_trap();
  }
  return 0;
}
