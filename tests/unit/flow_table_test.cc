// Flow table: single-threaded semantics, and concurrent updates against busy
// readers with real QSBR reclamation (run it under AddressSanitizer: a slot
// reused before readers left it would show as a use-after-free or as a torn
// config below).
#include <catch2/catch.hpp>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "dataplane/core/flow_table.h"
#include "dataplane/core/net.h"

using namespace sluice;

namespace {
const uint32_t kA = *net::parse_ipv4("192.0.2.1");
const uint32_t kB = *net::parse_ipv4("198.51.100.1");

FlowConfig cfg_with(uint32_t v) {
  FlowConfig c;
  // Every field derived from v so that a reader can detect a torn copy.
  c.src_ip = v;
  c.dst_ip = v ^ 0xffffffffu;
  c.expect_ip = v * 3;
  c.police_rate = v & 0xffff;
  c.src_port = uint16_t(v);
  c.dst_port = uint16_t(~v);
  return c;
}
bool consistent(const FlowConfig& c) {
  uint32_t v = c.src_ip;
  return c.dst_ip == (v ^ 0xffffffffu) && c.expect_ip == v * 3 && c.police_rate == (v & 0xffff) &&
         c.src_port == uint16_t(v) && c.dst_port == uint16_t(~v);
}
}  // namespace

TEST_CASE("upsert, generations, delete", "[flowtable]") {
  FlowTable t(4, nullptr);
  REQUIRE(t.add_address(kA) == 0);
  REQUIRE(t.add_address(kB) == 1);
  CHECK(t.add_address(kA) == 0);
  CHECK(t.lookup(kA, 20000) == nullptr);
  CHECK(t.upsert(kA, 20000, cfg_with(1), 7, 10, 1000) == FlowTable::Result::kCreated);
  CHECK(t.upsert(kA, 20000, cfg_with(1), 7, 10, 1000) == FlowTable::Result::kUnchanged);
  CHECK(t.upsert(kA, 20000, cfg_with(2), 7, 9, 1000) == FlowTable::Result::kStale);
  CHECK(t.lookup(kA, 20000)->config().src_ip == 1);
  CHECK(t.upsert(kA, 20000, cfg_with(2), 7, 11, 1000) == FlowTable::Result::kUpdated);
  CHECK(t.lookup(kA, 20000)->config().src_ip == 2);
  CHECK(t.upsert(0x01020304, 20000, cfg_with(2), 7, 11, 1000) == FlowTable::Result::kBadAddress);
  CHECK(t.size() == 1);

  SECTION("state survives a config update") {
    FlowSlot* s = t.lookup(kA, 20000);
    s->st.packets.store(42);
    CHECK(t.upsert(kA, 20000, cfg_with(3), 7, 12, 1000) == FlowTable::Result::kUpdated);
    CHECK(t.lookup(kA, 20000)->st.packets.load() == 42);
  }
  SECTION("capacity is enforced and freed slots are reused") {
    CHECK(t.upsert(kA, 20002, cfg_with(1), 0, 1, 1000) == FlowTable::Result::kCreated);
    CHECK(t.upsert(kB, 20000, cfg_with(1), 0, 1, 1000) == FlowTable::Result::kCreated);
    CHECK(t.upsert(kB, 20002, cfg_with(1), 0, 1, 1000) == FlowTable::Result::kCreated);
    CHECK(t.upsert(kB, 20004, cfg_with(1), 0, 1, 1000) == FlowTable::Result::kFull);
    CHECK(t.remove(kB, 20000));
    CHECK_FALSE(t.remove(kB, 20000));
    CHECK(t.upsert(kB, 20004, cfg_with(1), 0, 1, 1000) == FlowTable::Result::kCreated);
    CHECK(t.lookup(kB, 20004)->st.packets.load() == 0);
  }
  SECTION("visit walks flows in key order and resumes") {
    t.upsert(kB, 30000, cfg_with(5), 0, 1, 1000);
    t.upsert(kA, 20100, cfg_with(6), 0, 1, 1000);
    std::vector<uint16_t> seen;
    auto next = t.visit(0, 0, [&](FlowSlot& s) {
      seen.push_back(s.meta.local_port);
      return seen.size() < 2;
    });
    CHECK(seen == std::vector<uint16_t>{20000, 20100});
    t.visit(next.first, next.second, [&](FlowSlot& s) {
      seen.push_back(s.meta.local_port);
      return true;
    });
    CHECK(seen == std::vector<uint16_t>{20000, 20100, 30000});
  }
}

TEST_CASE("memory per flow stays within 256 bytes at 1M flows", "[flowtable][memory]") {
  // The slot size is a compile-time fact; the index is 256 KiB per address.
  uint64_t per_flow_1m = sizeof(FlowSlot) + (16ull * 65536 * 4) / (1 << 20);
  INFO("sizeof(FlowSlot) = " << sizeof(FlowSlot));
  CHECK(per_flow_1m <= 256);
}

TEST_CASE("concurrent updates and deletes against busy readers (QSBR)", "[flowtable][concurrency]") {
  constexpr unsigned kReaders = 2;
  size_t sz = rte_rcu_qsbr_get_memsize(kReaders);
  auto* q = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, (sz + 63) / 64 * 64));
  REQUIRE(rte_rcu_qsbr_init(q, kReaders) == 0);
  {
    FlowTable t(256, q);
    t.add_address(kA);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> torn{0}, reads{0};
    std::atomic<unsigned> started{0};
    std::atomic<uint64_t> passes{0};
    std::vector<std::thread> readers;
    for (unsigned id = 0; id < kReaders; ++id) {
      rte_rcu_qsbr_thread_register(q, id);
      readers.emplace_back([&, id] {
        rte_rcu_qsbr_thread_online(q, id);
        started.fetch_add(1);
        uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          for (uint16_t p = 20000; p < 20064; ++p) {
            if (FlowSlot* s = t.lookup(kA, p)) {
              const FlowConfig& c = s->config();
              if (!consistent(c)) torn.fetch_add(1);
              // Readers also write state, as the owning worker would.
              s->st.packets.store(s->st.packets.load(std::memory_order_relaxed) + 1,
                                  std::memory_order_relaxed);
              ++n;
            }
          }
          rte_rcu_qsbr_quiescent(q, id);
          passes.fetch_add(1, std::memory_order_relaxed);
        }
        rte_rcu_qsbr_thread_offline(q, id);
        reads.fetch_add(n);
      });
    }
    uint32_t v = 1;
    // The writer churns only while every reader is inside the table, and
    // keeps going until the readers have made real progress.
    while (started.load() < kReaders) std::this_thread::yield();
    for (int round = 0; round < 1000 || (passes.load() < 2000 && round < 100000); ++round) {
      for (uint16_t p = 20000; p < 20064; ++p) {
        uint16_t port = uint16_t(20000 + (p * 7 + round) % 64);
        if ((round + p) % 5 == 0) {
          t.remove(kA, port);
        } else {
          auto r = t.upsert(kA, port, cfg_with(++v), 0, uint64_t(round), 1000);
          REQUIRE(r != FlowTable::Result::kFull);
        }
      }
      t.reclaim(false);
    }
    stop = true;
    for (auto& th : readers) th.join();
    t.reclaim(true);
    CHECK(torn.load() == 0);
    CHECK(reads.load() > 0);
    CHECK(t.pending_reclaim() == 0);
  }
  std::free(q);
}
