// Fuzz target for the SDP parser and rewriter: whatever parses must
// serialize to text that parses to the same serialization, and rewriting it
// for the other leg must produce SDP that parses too.
#include <cstdint>
#include <string>

#include "controlplane/sdp/sdp.h"

using namespace sluice::sdp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Session s;
  if (parse(in, &s) != Error::kNone) return 0;
  std::string once = serialize(s);
  Session s2;
  if (parse(once, &s2) != Error::kNone || serialize(s2) != once) __builtin_trap();
  std::vector<MediaPlan> plan(s.media.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    plan[i].addr = "192.0.2.1";
    plan[i].port = uint16_t(20000 + 2 * i);
    plan[i].srtp = i % 2;
    Crypto c;
    c.tag = 1;
    c.suite = "AES_CM_128_HMAC_SHA1_80";
    c.key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    plan[i].crypto.push_back(c);
  }
  Session out;
  std::string rewritten = rewrite(s, plan, "192.0.2.1", 2);
  if (parse(rewritten, &out) != Error::kNone || out.media.size() != s.media.size())
    __builtin_trap();
  return 0;
}
