// Fuzz target for the SRTP/SRTCP engine: arbitrary bytes as the UDP payload
// of a flow that decrypts and re-encrypts, for every suite. The first byte
// picks suite, RTP or RTCP, and whether to leave the version bits alone (else
// they are forced to 2, so most inputs reach the header, index and tag logic).
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/core/srtp.h"

using namespace sluice::srtp;

namespace {
struct Rig {
  Engine engine;
  CryptoConfig cfg[kSuiteCount];
  CryptoState st[kSuiteCount];
  Rig() {
    for (int s = 1; s < kSuiteCount; ++s) {
      const SuiteInfo& in = info(Suite(s));
      std::vector<uint8_t> k(in.key_len + in.salt_len, uint8_t(s));
      cfg[s].rx = KeySet::create(Suite(s), k.data(), in.key_len, k.data() + in.key_len,
                                 in.salt_len, true, true, uint64_t(2 * s));
      cfg[s].tx = KeySet::create(Suite(s), k.data(), in.key_len, k.data() + in.key_len,
                                 in.salt_len, true, true, uint64_t(2 * s + 1));
      st[s].reset();
    }
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig* rig = new Rig();
  if (size < 1 || size > 4000) return 0;
  uint8_t sel = data[0];
  int s = 1 + sel % (kSuiteCount - 1);
  std::vector<uint8_t> buf(size - 1 + 64);
  std::memcpy(buf.data(), data + 1, size - 1);
  if (!(sel & 0x40) && size > 1) buf[0] = uint8_t(0x80 | (buf[0] & 0x3f));
  Op op;
  op.p = buf.data();
  op.len = uint32_t(size - 1);
  op.room = uint32_t(buf.size());
  op.st = &rig->st[s];
  op.cfg = &rig->cfg[s];
  op.rtcp = sel & 0x10;
  rig->engine.run(&op, 1, 0);
  if (op.verdict == Verdict::kOk && op.len > op.room) __builtin_trap();
  return 0;
}
