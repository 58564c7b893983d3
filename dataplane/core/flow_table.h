// The flow table: direct-indexed by (relay address index, UDP port).
//
// Why direct indexing rather than rte_hash: the relay allocates its local
// ports, so the key space is tiny and dense (a few addresses x 65536 ports).
// A lookup is one scan of a handful of addresses plus one load; the index
// costs 256 KiB per relay address (4 bytes per port), i.e. 4 bytes per flow
// at 1M flows spread over 16 addresses.
//
// Concurrency: workers read without locks; the control lcore is the single
// writer. Entries are published with release stores and read with acquire
// loads; a slot is reused only after every worker has reported a quiescent
// state (DPDK rte_rcu QSBR) since it was unpublished.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "dataplane/core/flow.h"

struct rte_rcu_qsbr;

namespace sluice {

class FlowTable {
 public:
  static constexpr int kMaxAddresses = 16;

  // qsbr may be null when there are no concurrent readers (unit tests).
  FlowTable(uint32_t capacity, rte_rcu_qsbr* qsbr);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Registers a relay address flows can be keyed on. Call before readers
  // start. Returns its index, or -1 when full.
  int add_address(uint32_t ip);
  int address_index(uint32_t ip) const {
    for (int i = 0; i < naddr_; ++i)
      if (addrs_[i] == ip) return i;
    return -1;
  }
  int address_count() const { return naddr_; }
  uint32_t address(int i) const { return addrs_[i]; }

  // Reader side (workers). Must run inside the reader's QSBR online section.
  FlowSlot* lookup(uint32_t ip, uint16_t port) const {
    int a = address_index(ip);
    return a < 0 ? nullptr : lookup_index(a, port);
  }
  FlowSlot* lookup_index(int addr_idx, uint16_t port) const {
    // Acquire pairs with the release store in upsert(): a non-zero entry
    // points at a slot whose config and state were initialised before.
    uint32_t e = ports_[addr_idx][port].load(std::memory_order_acquire);
    return e ? &slots_[e - 1] : nullptr;
  }

  // Writer side (control lcore only).
  enum class Result { kCreated, kUpdated, kUnchanged, kStale, kFull, kBadAddress };
  // before_publish(slot index) runs before readers can see the new or
  // updated config (the SRTP state is set up there); changed forces an update
  // when something outside FlowConfig (the keys) changed.
  Result upsert(uint32_t ip, uint16_t port, const FlowConfig& cfg, uint64_t cookie,
                uint64_t generation, uint32_t timeout_ms,
                const std::function<void(uint32_t)>& before_publish = {}, bool changed = false);
  bool remove(uint32_t ip, uint16_t port);
  // Returns slots whose grace period has passed to the free list; with wait,
  // blocks until every pending slot is free.
  void reclaim(bool wait);

  uint32_t size() const { return size_; }
  uint32_t capacity() const { return capacity_; }
  uint32_t slot_index(const FlowSlot* s) const { return uint32_t(s - slots_); }
  FlowSlot& slot(uint32_t idx) { return slots_[idx]; }
  // Bytes of table memory: slots plus the port index of every address.
  uint64_t memory_bytes() const;
  size_t pending_reclaim() const { return pending_.size(); }

  // Visits live flows in key order (address index, port), starting at
  // (addr_idx, port). fn returns false to stop; the return value is the
  // (addr_idx, port) position to resume from, or {-1, 0} at the end.
  template <class Fn>
  std::pair<int, uint32_t> visit(int addr_idx, uint32_t port, Fn&& fn) {
    for (int a = addr_idx; a < naddr_; ++a, port = 0) {
      for (uint32_t p = port; p < 65536; ++p) {
        uint32_t e = ports_[a][p].load(std::memory_order_relaxed);
        if (e && !fn(slots_[e - 1])) return {a, p + 1};
      }
    }
    return {-1, 0};
  }

 private:
  void wait_grace(FlowSlot& s);

  rte_rcu_qsbr* qsbr_;
  uint32_t capacity_;
  uint32_t size_ = 0;
  FlowSlot* slots_;
  int naddr_ = 0;
  uint32_t addrs_[kMaxAddresses] = {};
  std::atomic<uint32_t>* ports_[kMaxAddresses] = {};
  // Free slots form an intrusive list through FlowMeta::generation (unused
  // while a slot is free): no side array, 4 bytes per flow saved.
  static constexpr uint32_t kNone = UINT32_MAX;
  uint32_t free_head_ = kNone;
  void push_free(uint32_t idx) {
    slots_[idx].meta.generation = free_head_;
    free_head_ = idx;
  }
  struct Pending {
    uint64_t token;
    uint32_t idx;
  };
  std::deque<Pending> pending_;
};

}  // namespace sluice
