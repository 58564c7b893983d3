// IPv4 neighbour table: IP -> MAC for next hops. Workers read lock-free; the
// control lcore (ARP handling, aging) is the only writer.
//
// Open addressing with linear probing. A slot's IP is written once, before
// the slot becomes visible, and never changes; so a reader that matches the
// IP reads one 64-bit word holding MAC, port and state together and always
// sees a consistent entry. Entries are invalidated, never removed, so probe
// chains stay intact; the table is sized far above the number of next hops
// (a relay talks to a few gateways and on-link peers).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "dataplane/core/net.h"

namespace sluice {

class NeighborTable {
 public:
  static constexpr uint32_t kSize = 4096;  // power of two
  enum State : uint8_t { kInvalid = 0, kIncomplete = 1, kReachable = 2, kStale = 3, kStatic = 4 };

  struct Entry {
    net::Mac mac;
    uint8_t port;
    State state;
  };

  // Reader: returns the MAC when the entry is usable (reachable, stale or
  // static; a stale entry is still used while it is being refreshed).
  bool lookup(uint32_t ip, net::Mac* mac) const {
    uint32_t i = hash(ip);
    for (uint32_t n = 0; n < kSize; ++n, i = (i + 1) & (kSize - 1)) {
      // Acquire pairs with the release store of ip_ in claim(): the word
      // read below belongs to this IP.
      uint32_t k = ip_[i].load(std::memory_order_acquire);
      if (k == 0) return false;
      if (k == ip) {
        uint64_t w = word_[i].load(std::memory_order_acquire);
        State s = State(w >> 56);
        if (s < kReachable) return false;
        for (int b = 0; b < 6; ++b) (*mac)[b] = uint8_t(w >> (40 - 8 * b));
        return true;
      }
    }
    return false;
  }

  // Writer side.
  // Sets an entry; returns false when the table is full.
  bool set(uint32_t ip, const net::Mac& mac, uint8_t port, State s, uint64_t now) {
    int i = claim(ip);
    if (i < 0) return false;
    uint64_t w = uint64_t(s) << 56 | uint64_t(port) << 48;
    for (int b = 0; b < 6; ++b) w |= uint64_t(mac[b]) << (40 - 8 * b);
    // Release: a reader that sees the new word sees it whole (it is one word).
    word_[i].store(w, std::memory_order_release);
    updated_[i] = now;
    return true;
  }
  std::optional<Entry> get(uint32_t ip) const {
    int i = find(ip);
    if (i < 0) return std::nullopt;
    return decode(word_[i].load(std::memory_order_relaxed));
  }
  uint64_t updated(uint32_t ip) const {
    int i = find(ip);
    return i < 0 ? 0 : updated_[i];
  }
  void set_state(uint32_t ip, State s) {
    int i = find(ip);
    if (i < 0) return;
    uint64_t w = word_[i].load(std::memory_order_relaxed);
    w = (w & ~(uint64_t(0xff) << 56)) | uint64_t(s) << 56;
    word_[i].store(w, std::memory_order_release);
  }
  // Marks an IP as being resolved (no MAC yet) if unknown.
  void mark_incomplete(uint32_t ip, uint8_t port, uint64_t now) {
    int i = find(ip);
    if (i >= 0 && State(word_[i].load(std::memory_order_relaxed) >> 56) != kInvalid) return;
    set(ip, net::Mac{}, port, kIncomplete, now);
  }
  // Visits every non-invalid entry: fn(ip, Entry, updated).
  template <class Fn>
  void visit(Fn&& fn) const {
    for (uint32_t i = 0; i < kSize; ++i) {
      uint32_t k = ip_[i].load(std::memory_order_relaxed);
      if (!k) continue;
      Entry e = decode(word_[i].load(std::memory_order_relaxed));
      if (e.state != kInvalid) fn(k, e, updated_[i]);
    }
  }

 private:
  static uint32_t hash(uint32_t ip) { return (ip * 2654435761u) >> 20 & (kSize - 1); }
  static Entry decode(uint64_t w) {
    Entry e;
    for (int b = 0; b < 6; ++b) e.mac[b] = uint8_t(w >> (40 - 8 * b));
    e.port = uint8_t(w >> 48);
    e.state = State(w >> 56);
    return e;
  }
  int find(uint32_t ip) const {
    uint32_t i = hash(ip);
    for (uint32_t n = 0; n < kSize; ++n, i = (i + 1) & (kSize - 1)) {
      uint32_t k = ip_[i].load(std::memory_order_relaxed);
      if (k == 0) return -1;
      if (k == ip) return int(i);
    }
    return -1;
  }
  int claim(uint32_t ip) {
    if (ip == 0) return -1;  // 0 marks an empty slot
    uint32_t i = hash(ip);
    for (uint32_t n = 0; n < kSize; ++n, i = (i + 1) & (kSize - 1)) {
      uint32_t k = ip_[i].load(std::memory_order_relaxed);
      if (k == ip) return int(i);
      if (k == 0) {
        word_[i].store(0, std::memory_order_relaxed);
        ip_[i].store(ip, std::memory_order_release);
        return int(i);
      }
    }
    return -1;
  }

  std::atomic<uint32_t> ip_[kSize] = {};
  std::atomic<uint64_t> word_[kSize] = {};
  uint64_t updated_[kSize] = {};
};

}  // namespace sluice
