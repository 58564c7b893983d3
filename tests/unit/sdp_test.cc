// SDP parsing and the B2BUA's rewrite, as fixture tables.
#include <catch2/catch.hpp>
#include <string>

#include "controlplane/sdp/sdp.h"

using namespace sluice::sdp;

namespace {

// A teleworker's softphone offer: SRTP with two keys, rtcp-mux, ICE.
const char kPhoneOffer[] =
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 10.0.0.7\r\n"
    "s=-\r\n"
    "c=IN IP4 10.0.0.7\r\n"
    "t=0 0\r\n"
    "a=ice-ufrag:8hhY\r\n"
    "m=audio 49170 RTP/SAVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=rtcp:49170\r\n"
    "a=rtcp-mux\r\n"
    "a=candidate:1 1 UDP 2130706431 10.0.0.7 49170 typ host\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4\r\n"
    "a=crypto:2 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==\r\n"
    "a=sendrecv\r\n";

}  // namespace

TEST_CASE("parse an offer", "[sdp]") {
  Session s;
  REQUIRE(parse(kPhoneOffer, &s) == Error::kNone);
  CHECK(s.origin_addr == "10.0.0.7");
  CHECK(s.addr == "10.0.0.7");
  REQUIRE(s.media.size() == 1);
  const Media& m = s.media[0];
  CHECK(m.type == "audio");
  CHECK(m.port == 49170);
  CHECK(m.proto == "RTP/SAVP");
  CHECK(m.fmts == std::vector<std::string>{"0", "8", "101"});
  CHECK(m.addr == "10.0.0.7");  // from the session level
  CHECK(m.rtcp_mux);
  CHECK(m.rtcp_port == 49170);
  CHECK(m.direction == "sendrecv");
  CHECK(serialize(s) == kPhoneOffer);  // nothing lost, order kept
}

TEST_CASE("SDES crypto attributes", "[sdp]") {
  Crypto c;
  REQUIRE(parse_crypto("crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4 KDR=1", &c));
  CHECK(c.tag == 1);
  CHECK(c.suite == "AES_CM_128_HMAC_SHA1_80");
  CHECK(c.key == "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR");
  CHECK(c.lifetime == "2^20");
  CHECK(c.mki == "1:4");
  CHECK(c.params == "KDR=1");
  CHECK(format_crypto(c) == "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4 KDR=1");
  for (const char* bad : {"crypto:x AES inline:abc", "crypto:1 AES key:abc", "crypto:1 AES",
                          "crypto:1 AES inline:", "crypto:1234567890 AES inline:a"})
    CHECK_FALSE(parse_crypto(bad, &c));
}

TEST_CASE("rewrite: SRTP phone offer to a plain-RTP PBX leg", "[sdp]") {
  Session s;
  REQUIRE(parse(kPhoneOffer, &s) == Error::kNone);
  MediaPlan p;
  p.addr = "198.51.100.1";
  p.port = 20002;
  p.srtp = false;
  std::string out = rewrite(s, {p}, "198.51.100.1", 7);
  CHECK(out ==
        "v=0\r\n"
        "o=alice 2890844526 7 IN IP4 198.51.100.1\r\n"
        "s=-\r\n"
        "t=0 0\r\n"
        "m=audio 20002 RTP/AVP 0 8 101\r\n"
        "c=IN IP4 198.51.100.1\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=rtcp-mux\r\n"
        "a=sendrecv\r\n"
        "a=rtcp:20002 IN IP4 198.51.100.1\r\n");
}

TEST_CASE("rewrite: plain PBX answer to an SRTP phone leg, with a fresh key", "[sdp]") {
  const char answer[] =
      "v=0\r\n"
      "o=pbx 1 1 IN IP4 198.51.100.10\r\n"
      "s=call\r\n"
      "t=0 0\r\n"
      "m=audio 5000 RTP/AVP 0 101\r\n"
      "c=IN IP4 198.51.100.10\r\n"
      "a=rtpmap:101 telephone-event/8000\r\n"
      "a=fmtp:101 0-15\r\n"
      "m=video 5002 RTP/AVPF 96\r\n"
      "c=IN IP4 198.51.100.10\r\n"
      "a=rtpmap:96 H264/90000\r\n";
  Session s;
  REQUIRE(parse(answer, &s) == Error::kNone);
  MediaPlan audio;
  audio.addr = "192.0.2.1";
  audio.port = 20000;
  audio.srtp = true;
  Crypto c;
  c.tag = 1;
  c.suite = "AES_CM_128_HMAC_SHA1_80";
  c.key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
  audio.crypto = {c};
  MediaPlan video;
  video.disabled = true;  // the phone leg does not take video
  std::string out = rewrite(s, {audio, video}, "192.0.2.1", 2);
  CHECK(out ==
        "v=0\r\n"
        "o=pbx 1 2 IN IP4 192.0.2.1\r\n"
        "s=call\r\n"
        "t=0 0\r\n"
        "m=audio 20000 RTP/SAVP 0 101\r\n"
        "c=IN IP4 192.0.2.1\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-15\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
        "m=video 0 RTP/AVPF 96\r\n");
  Session back;
  REQUIRE(parse(out, &back) == Error::kNone);
  CHECK(back.media[1].port == 0);
}

TEST_CASE("rewrite keeps hold semantics", "[sdp]") {
  const char hold[] =
      "v=0\r\no=a 1 2 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
      "m=audio 49170 RTP/AVP 0\r\na=sendonly\r\n";
  Session s;
  REQUIRE(parse(hold, &s) == Error::kNone);
  CHECK(s.media[0].direction == "sendonly");
  MediaPlan p;
  p.addr = "192.0.2.1";
  p.port = 20000;
  std::string out = rewrite(s, {p}, "192.0.2.1", 3);
  CHECK(out.find("c=IN IP4 0.0.0.0\r\n") != std::string::npos);
  CHECK(out.find("a=sendonly\r\n") != std::string::npos);
}

TEST_CASE("without_streams removes streams as RFC 3264 8.2 writes them", "[sdp]") {
  const char settled[] =
      "v=0\r\no=- 7 41 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
      "m=audio 20000 RTP/SAVP 0 101\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:0 PCMU/8000\r\n"
      "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"
      "m=video 20002/2 RTP/SAVP 96\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:96 H264/90000\r\n"
      "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";
  Session s;
  REQUIRE(parse(settled, &s) == Error::kNone);
  std::string out = without_streams(s, 0b10, 42);
  CHECK(out ==
        "v=0\r\no=- 7 42 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
        "m=audio 20000 RTP/SAVP 0 101\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"
        "m=video 0 RTP/SAVP 96\r\n");
  Session back;
  REQUIRE(parse(out, &back) == Error::kNone);  // a port-0 stream needs no c=
  CHECK(back.media[1].port == 0);
  // No stream named (bits past the last stream are ignored): only the
  // version moves, the streams come back byte for byte.
  std::string same = settled;
  same.replace(same.find(" 41 "), 4, " 43 ");
  CHECK(without_streams(s, 0, 43) == same);
  CHECK(without_streams(s, 0b100, 43) == same);
}

TEST_CASE("malformed SDP gets a named error", "[sdp]") {
  struct Case {
    const char* sdp;
    Error want;
  } cases[] = {
      {"", Error::kBadVersion},
      {"v=1\r\n", Error::kBadVersion},
      {"s=-\r\nv=0\r\n", Error::kBadVersion},
      {"v=0\r\nX=bad\r\n", Error::kBadLine},
      {"v=0\r\nnoequals\r\n", Error::kBadLine},
      {"v=0\r\no=a 1 2 IN IP4\r\n", Error::kBadOrigin},
      {"v=0\r\nc=IN IP4\r\n", Error::kBadConnection},
      {"v=0\r\nc=XX IP4 1.2.3.4\r\n", Error::kBadConnection},
      {"v=0\r\nm=audio 70000 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n", Error::kBadMedia},
      {"v=0\r\nm=audio 5000/0 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n", Error::kBadMedia},
      {"v=0\r\nm=audio 5000 RTP/AVP\r\n", Error::kBadMedia},
      {"v=0\r\nm=audio 5000 RTP/AVP 0\r\n", Error::kNoConnection},
      {"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\na=rtcp:x\r\n", Error::kBadLine},
  };
  for (const Case& c : cases) {
    CAPTURE(c.sdp);
    Session s;
    CHECK(parse(c.sdp, &s) == c.want);
  }
  Session s;
  std::string many = "v=0\r\nc=IN IP4 1.2.3.4\r\n";
  for (size_t i = 0; i <= kMaxMedia; ++i) many += "m=audio 5000 RTP/AVP 0\r\n";
  CHECK(parse(many, &s) == Error::kTooLarge);
  CHECK(parse(std::string(kMaxSize + 1, 'a'), &s) == Error::kTooLarge);
  // Bare LF line ends are accepted (RFC 4566 5), and written back as CRLF.
  REQUIRE(parse("v=0\nc=IN IP4 1.2.3.4\nm=audio 5000 RTP/AVP 0\n", &s) == Error::kNone);
  CHECK(serialize(s) == "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5000 RTP/AVP 0\r\n");
}
