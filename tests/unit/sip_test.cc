// The SIP parser: hand-written cases here, RFC 4475's torture messages from
// tests/sip/rfc4475 (see INDEX.tsv) below.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "controlplane/gateway_util.h"
#include "controlplane/sip/message.h"

using namespace sluice::sip;

namespace {

const char kInvite[] =
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP proxy.example.net"
    ";branch=z9hG4bKxyz\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@example.com>\r\n"
    "From: \"Alice, A.\" <sip:alice@example.com>;tag=1928301774\r\n"
    "i: a84b4c76e66710@pc33.example.com\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:alice@pc33.example.com>\r\n"
    "Subject: folded\r\n"
    "  over two lines\r\n"
    "Content-Type: application/sdp\r\n"
    "l: 4\r\n"
    "\r\n"
    "v=0\r";

Error parse_dgram(const std::string& s, Message* m) {
  size_t used = 0;
  return parse(s, false, m, &used);
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  size_t p = s.find(from);
  REQUIRE(p != std::string::npos);
  return s.replace(p, from.size(), to);
}

}  // namespace

TEST_CASE("a request with compact, folded and multi-value headers", "[sip]") {
  Message m;
  REQUIRE(parse_dgram(kInvite, &m) == Error::kNone);
  CHECK(m.request);
  CHECK(m.method == "INVITE");
  CHECK(m.uri == "sip:bob@example.com");
  CHECK(m.count("Via") == 2);
  CHECK(m.top_branch == "z9hG4bK776asdhds");
  CHECK(m.call_id == "a84b4c76e66710@pc33.example.com");
  CHECK(m.cseq == 314159);
  CHECK(m.cseq_method == "INVITE");
  CHECK(m.max_forwards == 70);
  CHECK(m.from_tag == "1928301774");
  CHECK(m.to_tag.empty());
  CHECK(*m.get("subject") == "folded over two lines");
  CHECK(m.body == "v=0\r");
  // Serialize and parse again: the same message.
  Message again;
  size_t used = 0;
  std::string s = m.serialize();
  REQUIRE(parse(s, true, &again, &used) == Error::kNone);
  CHECK(used == s.size());
  CHECK(again.headers.size() == m.headers.size());
  CHECK(again.body == m.body);
}

TEST_CASE("responses, including an empty reason phrase", "[sip]") {
  std::string r = std::string(kInvite);
  r = replace(r, "INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 180 Ringing");
  Message m;
  REQUIRE(parse_dgram(r, &m) == Error::kNone);
  CHECK(!m.request);
  CHECK(m.status == 180);
  CHECK(m.reason == "Ringing");
  r = replace(r, "SIP/2.0 180 Ringing", "SIP/2.0 100 ");
  REQUIRE(parse_dgram(r, &m) == Error::kNone);
  CHECK(m.reason.empty());
  CHECK(parse_dgram(replace(r, "SIP/2.0 100 ", "SIP/2.0 4294967301 Big"), &m) ==
        Error::kBadStartLine);
  CHECK(parse_dgram(replace(r, "SIP/2.0 100 ", "SIP/7.0 100 Trying"), &m) == Error::kBadVersion);
}

TEST_CASE("each defect gets its own error", "[sip]") {
  std::string ok = kInvite;
  Message m;
  struct Case {
    const char* from;
    const char* to;
    Error want;
  } cases[] = {
      {"INVITE sip:bob@example.com SIP/2.0", "INVITE  sip:bob@example.com SIP/2.0", Error::kBadStartLine},
      {"INVITE sip:bob@example.com SIP/2.0", "INVITE sip:bob@example.com SIP/2.0 ", Error::kBadStartLine},
      {"INVITE sip:bob@example.com SIP/2.0", "INVITE <sip:bob@example.com> SIP/2.0", Error::kBadStartLine},
      {"INVITE sip:bob@example.com SIP/2.0", "INVITE sip:bob@example.com SIP/7.0", Error::kBadVersion},
      {"CSeq: 314159 INVITE", "CSeq: 314159 BYE", Error::kCSeqMismatch},
      {"CSeq: 314159 INVITE", "CSeq: -1 INVITE", Error::kBadCSeq},
      {"CSeq: 314159 INVITE", "CSeq: 4294967296 INVITE", Error::kBadCSeq},
      {"Max-Forwards: 70", "Max-Forwards: 300", Error::kBadMaxForwards},
      {"l: 4", "l: 5", Error::kBodyTruncated},
      {"l: 4", "l: -4", Error::kBadContentLength},
      {"l: 4", "l: 99999999999999999999", Error::kBadContentLength},
      {"To: Bob <sip:bob@example.com>", "To: \"Bob <sip:bob@example.com>", Error::kBadQuoting},
      {"To: Bob <sip:bob@example.com>", "To: Bob <sip:bob@example.com", Error::kBadQuoting},
      {"i: a84b4c76e66710@pc33.example.com\r\n", "", Error::kMissingHeader},
      {"Max-Forwards: 70", "Max Forwards: 70", Error::kBadHeader},
      {"Max-Forwards: 70", "Max-Forwards 70", Error::kBadHeader},
      {"Via: SIP/2.0/UDP pc33", "Via: pc33", Error::kBadVia},
  };
  for (const Case& c : cases) {
    CAPTURE(c.to);
    CHECK(parse_dgram(replace(ok, c.from, c.to), &m) == c.want);
  }
  std::string nul = ok;
  nul[nul.find("Bob")] = '\0';
  CHECK(parse_dgram(nul, &m) == Error::kBadHeader);
  CHECK(parse_dgram(std::string(kMaxMessage + 1, 'x'), &m) == Error::kTooLarge);
}

TEST_CASE("stream framing: keep-alives, partial and back-to-back messages", "[sip]") {
  Message m;
  std::string one = Message{}.serialize();  // not a valid message: only for sizes
  (void)one;
  Message first;
  REQUIRE(parse_dgram(kInvite, &first) == Error::kNone);
  std::string wire = "\r\n\r\n" + first.serialize() + first.serialize();
  size_t used = 0;
  // Every strict prefix of the first message is incomplete.
  for (size_t n = 0; n < wire.size() / 2; n += 7)
    CHECK(parse(std::string_view(wire).substr(0, n), true, &m, &used) == Error::kIncomplete);
  REQUIRE(parse(wire, true, &m, &used) == Error::kNone);
  size_t first_len = used;
  REQUIRE(parse(std::string_view(wire).substr(first_len), true, &m, &used) == Error::kNone);
  CHECK(first_len + used == wire.size());
  // A stream message needs Content-Length.
  std::string no_cl = replace(kInvite, "l: 4\r\n", "");
  CHECK(parse(no_cl, true, &m, &used) == Error::kBadContentLength);
  // Datagram without it: the body runs to the end.
  REQUIRE(parse_dgram(no_cl, &m) == Error::kNone);
  CHECK(m.body == "v=0\r");
  // Header block over the limit on a stream.
  std::string big = "INVITE sip:a@b SIP/2.0\r\nX: " + std::string(kMaxMessage, 'a');
  CHECK(parse(big, true, &m, &used) == Error::kTooLarge);
}

TEST_CASE("list splitting and parameters respect quotes and brackets", "[sip]") {
  std::vector<std::string_view> v;
  REQUIRE(split_list("\"a,b\" <sip:x@y;p=1,2>, <sip:z>;q=0.5", &v));
  REQUIRE(v.size() == 2);
  CHECK(v[1] == "<sip:z>;q=0.5");
  CHECK(!split_list("\"open", &v));
  CHECK(param("<sip:a;tag=no>;tag=yes;lr", "tag") == "yes");
  CHECK(param("<sip:a>;LR;Tag = x ", "tag") == "x");
  CHECK(canonical_name("v") == "Via");
  CHECK(canonical_name("call-id") == "Call-ID");
  CHECK(canonical_name("X-Custom") == "X-Custom");
}

TEST_CASE("a Contact's URI and its parameters, with '>' inside a quoted parameter", "[sip]") {
  // baresip's Contact: the instance id is a quoted "<urn:...>".
  std::string c = "<sip:alice-0x55@192.0.2.10:5080>;expires=60;+sip.instance=\"<urn:uuid:7d75>\"";
  CHECK(uri_of(c) == "sip:alice-0x55@192.0.2.10:5080");
  CHECK(params_of(c) == ";expires=60;+sip.instance=\"<urn:uuid:7d75>\"");
  CHECK(params_of("\"A <b>\" <sip:a@b>;q=1") == ";q=1");
  CHECK(params_of("sip:a@b;expires=5") == ";expires=5");
  CHECK(params_of("<sip:a@b>").empty());
  CHECK(params_of("<sip:a@b").empty());  // unterminated: nothing to keep
}

namespace {

struct Torture {
  std::string name, section, expect;
  std::string bytes;
};

std::vector<Torture> load_rfc4475() {
  const char* root = std::getenv("SLUICE_SOURCE_ROOT");
  std::string dir = std::string(root ? root : SLUICE_SOURCE_DIR) + "/tests/sip/rfc4475/";
  std::ifstream idx(dir + "INDEX.tsv");
  std::vector<Torture> out;
  std::string line;
  while (std::getline(idx, line)) {
    std::istringstream ls(line);
    Torture t;
    std::getline(ls, t.name, '\t');
    std::getline(ls, t.section, '\t');
    std::getline(ls, t.expect, '\t');
    std::ifstream f(dir + t.name + ".dat", std::ios::binary);
    t.bytes.assign(std::istreambuf_iterator<char>(f), {});
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

TEST_CASE("URI escapes: a Replaces inside Refer-To round-trips", "[sip]") {
  // RFC 3891 7.1's example form: the Replaces header escaped into a URI header.
  CHECK(unescape("12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994") ==
        "12345@192.168.118.3;to-tag=12345;from-tag=5FFE-3994");
  CHECK(escape_header_value("12345@192.168.118.3;to-tag=12345;from-tag=5FFE-3994") ==
        "12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994");
  CHECK(unescape("%3b%3D") == ";=");  // either case
  // Malformed escapes stay as written; nothing reads past the end.
  CHECK(unescape("100%") == "100%");
  CHECK(unescape("%4") == "%4");
  CHECK(unescape("%zz%41") == "%zzA");
  CHECK(escape_header_value(std::string("a\0b%", 4)) == "a%00b%25");
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  CHECK(unescape(escape_header_value(all)) == all);
}

TEST_CASE("RFC 4475 torture messages", "[sip][rfc4475]") {
  std::vector<Torture> all = load_rfc4475();
  REQUIRE(all.size() == 49);  // 13 valid, 19 invalid, 17 semantic
  // Syntactically fine, but RFC 4475 3.3.1, 3.3.8 and 3.3.9 require a 400.
  const std::set<std::string> reject_semantic = {"insuf", "multi01", "mcl01"};
  int valid = 0, invalid = 0;
  for (const Torture& t : all) {
    CAPTURE(t.name, t.section);
    REQUIRE(!t.bytes.empty());
    Message m;
    size_t used = 0;
    Error e = parse(t.bytes, false, &m, &used);
    CAPTURE(describe(e));
    bool must_parse = t.expect == "valid" || (t.expect == "semantic" && !reject_semantic.count(t.name));
    if (must_parse) {
      CHECK(e == Error::kNone);
      ++valid;
      if (e != Error::kNone) continue;
      // Parse, serialize, parse again: the same message.
      Message again;
      size_t used2 = 0;
      std::string s = m.serialize();
      REQUIRE(parse(s, true, &again, &used2) == Error::kNone);
      CHECK(again.method == m.method);
      CHECK(again.uri == m.uri);
      // serialize() always writes Content-Length (RFC 2543 messages lack it).
      CHECK(again.headers.size() - again.count("Content-Length") ==
            m.headers.size() - m.count("Content-Length"));
      CHECK(again.body == m.body);
    } else {
      CHECK(e != Error::kNone);
      ++invalid;
    }
  }
  CHECK(valid == 27);
  CHECK(invalid == 22);
}

TEST_CASE("RFC 4475 details", "[sip][rfc4475]") {
  std::map<std::string, std::string> by;
  for (Torture& t : load_rfc4475()) by[t.name] = std::move(t.bytes);
  Message m;
  size_t used = 0;
  auto p = [&](const std::string& n) { return parse(by.at(n), false, &m, &used); };
  REQUIRE(p("dblreq") == Error::kNone);  // the second request is ignored
  CHECK(m.body.empty());
  CHECK(used < by.at("dblreq").size());
  REQUIRE(p("mpart01") == Error::kNone);
  CHECK(m.body.size() == 553);
  REQUIRE(p("esc02") == Error::kNone);
  CHECK(m.method == "RE%47IST%45R");  // not REGISTER
  CHECK(m.get("C%6Fntact") != nullptr);  // an unknown header, not Contact
  REQUIRE(p("transports") == Error::kNone);
  CHECK(m.count("Via") == 5);
  REQUIRE(p("longreq") == Error::kNone);
  CHECK(m.count("Via") == 34);
  REQUIRE(p("noreason") == Error::kNone);
  CHECK(m.status == 100);
  CHECK(m.reason.empty());
  REQUIRE(p("inv2543") == Error::kNone);  // no Content-Length: body to the end
  CHECK(!m.body.empty());
  CHECK(m.max_forwards == -1);
  REQUIRE(p("zeromf") == Error::kNone);
  CHECK(m.max_forwards == 0);
  CHECK(p("badvers") == Error::kBadVersion);  // 505
  CHECK(p("mismatch01") == Error::kCSeqMismatch);
  CHECK(p("clerr") == Error::kBodyTruncated);
  CHECK(p("baddate") == Error::kBadDate);
  CHECK(p("regbadct") == Error::kBadAddress);
  CHECK(p("badaspec") == Error::kBadAddress);
  CHECK(p("multi01") == Error::kRepeatedHeader);
  // baddn's archived file has no blank line after its headers; with one, the
  // unquoted display names with commas are what fails.
  CHECK(parse(by.at("baddn") + "\r\n", false, &m, &used) == Error::kBadAddress);
}

TEST_CASE("option tags: Require and Supported edited across lines and compact forms") {
  namespace util = sluice::cp::util;
  const std::string raw =
      "INVITE sip:b@example.net SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKopt\r\n"
      "From: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>\r\n"
      "Call-ID: opt@x\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
      "Require: 100rel\r\nRequire: Timer ,foo\r\nk: replaces\r\n"
      "Session-Expires: 90;refresher=uac\r\nMin-SE: 90\r\nContent-Length: 0\r\n\r\n";
  Message m;
  size_t used = 0;
  REQUIRE(parse(raw, false, &m, &used) == Error::kNone);
  CHECK(util::option_tags(m, "Require") == std::vector<std::string>{"100rel", "Timer", "foo"});
  util::add_option_tag(&m, "Supported", "timer");
  CHECK(m.all("Supported") == std::vector<std::string>{"replaces, timer"});
  util::add_option_tag(&m, "Supported", "timer");  // already there: unchanged
  CHECK(m.all("Supported") == std::vector<std::string>{"replaces, timer"});
  util::strip_session_timer(&m);
  CHECK(m.all("Require") == std::vector<std::string>{"100rel, foo"});
  CHECK_FALSE(m.get("Session-Expires"));
  CHECK_FALSE(m.get("Min-SE"));
  util::drop_option_tag(&m, "Require", "100rel");
  util::drop_option_tag(&m, "Require", "foo");
  CHECK_FALSE(m.get("Require"));  // emptied: gone
  util::drop_option_tag(&m, "Require", "foo");  // nothing to drop
  CHECK_FALSE(m.get("Require"));
}

TEST_CASE("identity: a phone's P-Asserted-Identity stays out, the PBX's reaches phones unless private") {
  namespace util = sluice::cp::util;
  auto msg = [](const std::string& extra) {
    Message m;
    size_t used = 0;
    std::string raw =
        "INVITE sip:b@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKpai\r\n"
        "From: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>\r\nCall-ID: pai@x\r\n"
        "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nP-Asserted-Identity: <sip:200@pbx.example>\r\n" +
        extra + "Content-Length: 0\r\n\r\n";
    REQUIRE(parse(raw, false, &m, &used) == Error::kNone);
    return m;
  };
  auto relayed = [](const Message& from, bool to_outside) {
    Message to;
    util::copy_headers(from, &to, to_outside);
    return to.get("P-Asserted-Identity") != nullptr;
  };
  CHECK(relayed(msg(""), true));                         // PBX -> phone
  CHECK_FALSE(relayed(msg(""), false));                  // phone -> PBX
  CHECK_FALSE(relayed(msg("Privacy: id\r\n"), true));    // the PBX asks for privacy
  CHECK_FALSE(relayed(msg("Privacy: user ; ID\r\n"), true));
  CHECK(relayed(msg("Privacy: none\r\n"), true));
  CHECK(relayed(msg("Privacy: header\r\n"), true));      // "id" only as a whole value
}
