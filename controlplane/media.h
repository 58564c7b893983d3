// Media resources the B2BUA hands out: relay ports from the configured range
// (one pool per relay address, RTP on even ports, RTCP on the next odd one)
// and fresh SDES master keys (RFC 4568) for each leg.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace sluice::cp {

class PortPool {
 public:
  // Even ports in [min, max]; each allocation is the pair (p, p + 1).
  PortPool(uint16_t min, uint16_t max);
  // 0 when exhausted. Freed ports go to the back of the queue, so a port is
  // not reused while late packets of its last call may still arrive.
  uint16_t take();
  void give(uint16_t port);
  // Marks a port taken (a call restored from the journal).
  bool claim(uint16_t port);
  size_t free() const { return free_.size(); }
  size_t used() const { return total_ - free_.size(); }

 private:
  std::deque<uint16_t> free_;
  std::vector<bool> taken_;
  uint16_t min_;
  size_t total_;
};

// SRTP suites the relay speaks, by SDES name.
struct SuiteInfo {
  const char* name;
  int dataplane;  // sluice.dataplane.v1.SrtpSuite value
  int key_len, salt_len;
};
const SuiteInfo* suite_by_name(const std::string& name);
const SuiteInfo* suite_by_number(int dataplane);

// A fresh inline key (base64 of key || salt) for `suite`.
std::string new_inline_key(const SuiteInfo& suite);
// Splits an inline key into master key and salt; false if it does not
// decode or has the wrong size for the suite.
bool split_inline_key(const SuiteInfo& suite, const std::string& b64, std::string* key,
                      std::string* salt);

}  // namespace sluice::cp
