#include "dataplane/core/flow_table.h"

#include <rte_rcu_qsbr.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace sluice {

bool FlowConfig::operator==(const FlowConfig& o) const {
  return src_ip == o.src_ip && dst_ip == o.dst_ip && expect_ip == o.expect_ip &&
         police_rate == o.police_rate && police_burst == o.police_burst &&
         src_port == o.src_port && dst_port == o.dst_port &&
         expect_port == o.expect_port && egress_port == o.egress_port &&
         latch == o.latch && max_senders == o.max_senders && dscp == o.dscp &&
         ttl_mode == o.ttl_mode && ttl_value == o.ttl_value && kind == o.kind &&
         worker == o.worker && crypto == o.crypto;
}

void FlowState::reset() {
  packets.store(0, std::memory_order_relaxed);
  bytes.store(0, std::memory_order_relaxed);
  last_seen_tsc.store(0, std::memory_order_relaxed);
  latched.store(0, std::memory_order_relaxed);
  police_tat = 0;
  for (auto& d : drops) d.store(0, std::memory_order_relaxed);
  last_ssrc.store(0, std::memory_order_relaxed);
  seq_gaps.store(0, std::memory_order_relaxed);
  for (auto& s : sender_ip) s.store(0, std::memory_order_relaxed);
  for (auto& s : sender_port) s.store(0, std::memory_order_relaxed);
  last_seq.store(0, std::memory_order_relaxed);
  nsenders.store(0, std::memory_order_relaxed);
  last_pt.store(0, std::memory_order_relaxed);
  seq_valid = false;
}

FlowTable::FlowTable(uint32_t capacity, rte_rcu_qsbr* qsbr)
    : qsbr_(qsbr), capacity_(capacity) {
  slots_ = static_cast<FlowSlot*>(std::aligned_alloc(64, (sizeof(FlowSlot) * capacity + 63) / 64 * 64));
  if (!slots_) throw std::bad_alloc();
  for (uint32_t i = 0; i < capacity; ++i) new (&slots_[i]) FlowSlot();
  for (uint32_t i = capacity; i > 0; --i) push_free(i - 1);
}

FlowTable::~FlowTable() {
  for (int a = 0; a < naddr_; ++a) delete[] ports_[a];
  for (uint32_t i = 0; i < capacity_; ++i) slots_[i].~FlowSlot();
  std::free(slots_);
}

int FlowTable::add_address(uint32_t ip) {
  int existing = address_index(ip);
  if (existing >= 0) return existing;
  if (naddr_ == kMaxAddresses) return -1;
  ports_[naddr_] = new std::atomic<uint32_t>[65536]();
  addrs_[naddr_] = ip;
  return naddr_++;
}

uint64_t FlowTable::memory_bytes() const {
  return uint64_t(sizeof(FlowSlot)) * capacity_ +
         uint64_t(naddr_) * 65536 * sizeof(std::atomic<uint32_t>);
}

void FlowTable::wait_grace(FlowSlot& s) {
  if (s.meta.grace_token && qsbr_) rte_rcu_qsbr_check(qsbr_, s.meta.grace_token, true);
  s.meta.grace_token = 0;
}

FlowTable::Result FlowTable::upsert(uint32_t ip, uint16_t port, const FlowConfig& cfg,
                                    uint64_t cookie, uint64_t generation,
                                    uint32_t timeout_ms,
                                    const std::function<void(uint32_t)>& before_publish,
                                    bool changed) {
  int a = address_index(ip);
  if (a < 0) return Result::kBadAddress;
  std::atomic<uint32_t>& entry = ports_[a][port];
  uint32_t e = entry.load(std::memory_order_relaxed);  // we are the only writer
  if (e) {
    FlowSlot& s = slots_[e - 1];
    if (generation < s.meta.generation) return Result::kStale;
    uint8_t cur = s.meta.active.load(std::memory_order_relaxed);
    if (!changed && s.cfg[cur] == cfg && s.meta.cookie == cookie &&
        s.meta.timeout_ms == timeout_ms) {
      s.meta.generation = generation;
      return Result::kUnchanged;
    }
    // The inactive copy may still be read by a worker that loaded `active`
    // before the previous flip; wait out that grace period first.
    wait_grace(s);
    if (before_publish) before_publish(e - 1);
    s.cfg[cur ^ 1] = cfg;
    // Release: the copy is complete before workers can select it.
    s.meta.active.store(cur ^ 1, std::memory_order_release);
    if (qsbr_) s.meta.grace_token = rte_rcu_qsbr_start(qsbr_);
    s.meta.cookie = cookie;
    s.meta.generation = generation;
    s.meta.timeout_ms = timeout_ms;
    return Result::kUpdated;
  }
  if (free_head_ == kNone) reclaim(true);
  if (free_head_ == kNone) return Result::kFull;
  uint32_t idx = free_head_;
  FlowSlot& s = slots_[idx];
  free_head_ = uint32_t(s.meta.generation);
  s.cfg[0] = cfg;
  s.st.reset();
  s.meta.reset();
  s.meta.cookie = cookie;
  s.meta.generation = generation;
  s.meta.local_ip = ip;
  s.meta.local_port = port;
  s.meta.timeout_ms = timeout_ms;
  s.meta.in_use = 1;
  if (before_publish) before_publish(idx);
  // Release: slot contents above are visible before the entry is.
  entry.store(idx + 1, std::memory_order_release);
  ++size_;
  return Result::kCreated;
}

bool FlowTable::remove(uint32_t ip, uint16_t port) {
  int a = address_index(ip);
  if (a < 0) return false;
  std::atomic<uint32_t>& entry = ports_[a][port];
  uint32_t e = entry.load(std::memory_order_relaxed);
  if (!e) return false;
  // Relaxed is enough: readers that still see the old index are covered by
  // the grace period below, and the slot is not reused before it ends.
  entry.store(0, std::memory_order_relaxed);
  slots_[e - 1].meta.in_use = 0;
  --size_;
  if (!qsbr_) {
    push_free(e - 1);
    return true;
  }
  pending_.push_back({rte_rcu_qsbr_start(qsbr_), e - 1});
  return true;
}

void FlowTable::reclaim(bool wait) {
  while (!pending_.empty()) {
    Pending& p = pending_.front();
    if (!rte_rcu_qsbr_check(qsbr_, p.token, wait)) return;
    slots_[p.idx].meta.grace_token = 0;
    push_free(p.idx);
    pending_.pop_front();
  }
}

}  // namespace sluice
