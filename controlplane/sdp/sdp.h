// SDP (RFC 4566) as the B2BUA needs it: parse what a phone or PBX offers,
// then write the other leg's version with the relay's addresses and ports,
// fresh SDES keys (RFC 4568) and the transport profile that leg wants.
//
// Lines the relay does not understand are kept verbatim and in order, so an
// offer's semantics survive everything but the media endpoints and crypto.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sdp {

inline constexpr size_t kMaxSize = 65536;
inline constexpr size_t kMaxMedia = 16;

enum class Error : uint8_t {
  kNone,
  kTooLarge,      // over kMaxSize, too many lines or media sections
  kBadLine,       // not "x=value" with a lower-case letter
  kBadVersion,    // first line not v=0
  kBadOrigin,     // o= not six fields
  kBadConnection, // c= not "IN IP4|IP6 address"
  kBadMedia,      // m= not "type port[/n] proto fmt..."
  kNoConnection,  // a media section with neither its own nor a session c=
};
const char* describe(Error e);

struct Line {
  char type;          // 'a', 'b', 'c', ...
  std::string value;  // after "x="
};

struct Media {
  std::string type;   // audio, video, image, ...
  uint16_t port = 0;
  uint16_t nports = 1;
  std::string proto;  // RTP/AVP, RTP/SAVP, RTP/AVPF, RTP/SAVPF, udptl, ...
  std::vector<std::string> fmts;
  std::vector<Line> lines;  // i=, c=, b=, k=, a= in order
  // Derived from lines:
  std::string addr;         // c= of this section, else the session's
  bool rtcp_mux = false;
  uint16_t rtcp_port = 0;   // a=rtcp, 0 if absent
  std::string direction;    // sendrecv (default), sendonly, recvonly, inactive
};

struct Session {
  std::vector<Line> lines;  // session level, v= to the first m=
  std::string addr;         // session-level c= address, if any
  std::string origin_addr;  // o= unicast address
  std::vector<Media> media;
};

Error parse(std::string_view text, Session* out);
std::string serialize(const Session& s);

// a=crypto:<tag> <suite> inline:<base64 key||salt>[|lifetime][|MKI:length]
// [session parameters] (RFC 4568 9.1). Only inline keys, no session params
// beyond keeping them, at most one key per line.
struct Crypto {
  uint32_t tag = 0;
  std::string suite;
  std::string key;       // base64 of master key || master salt
  std::string lifetime;  // as written, empty if absent
  std::string mki;       // "value:length", empty if absent
  std::string params;    // session parameters, as written
};
bool parse_crypto(std::string_view value, Crypto* out);
std::string format_crypto(const Crypto& c);

// How one media section leaves the relay toward one leg.
struct MediaPlan {
  bool disabled = false;   // port 0 (a rejected or removed stream)
  std::string addr;        // the relay address the leg must send to
  uint16_t port = 0;       // RTP (and RTCP when muxed); RTCP is port + 1
  bool srtp = false;       // RTP/SAVP(F) with `crypto`; else RTP/AVP(F)
  std::vector<Crypto> crypto;
};

// The other leg's SDP: connection addresses and ports replaced, a=rtcp
// pointed at the relay (kept only where the input had one, or where RTCP is
// not muxed), a=crypto lines replaced by the plan's, the profile switched
// between AVP and SAVP, ICE attributes dropped (the relay anchors the media),
// o= address replaced and its version set to `version`.
std::string rewrite(const Session& in, const std::vector<MediaPlan>& plan,
                    const std::string& origin_addr, uint64_t version);

// The same session with the streams whose bit is set in `off` (bit i:
// media[i]) removed, as RFC 3264 8.2 writes a removed stream: port 0, its
// formats kept, its attributes dropped; o= version set to `version`.
std::string without_streams(const Session& in, uint32_t off, uint64_t version);

}  // namespace sluice::sdp
