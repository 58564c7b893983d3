// Fuzz target for the SIP parser: arbitrary bytes as a datagram and as a
// stream; a message that parses must serialize and parse again to the same
// start line, headers and body.
#include <cstdint>
#include <string>

#include "controlplane/sip/message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 200000) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (bool stream : {false, true}) {
    sluice::sip::Message m;
    size_t used = 0;
    if (sluice::sip::parse(in, stream, &m, &used) != sluice::sip::Error::kNone) continue;
    if (used > size) __builtin_trap();
    std::string again = m.serialize();
    sluice::sip::Message m2;
    size_t used2 = 0;
    if (sluice::sip::parse(again, true, &m2, &used2) != sluice::sip::Error::kNone ||
        used2 != again.size() || m2.method != m.method || m2.uri != m.uri ||
        m2.status != m.status || m2.body != m.body || m2.call_id != m.call_id ||
        m2.cseq != m.cseq)
      __builtin_trap();
  }
  return 0;
}
