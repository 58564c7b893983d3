// SIP messages (RFC 3261 section 7 and 25) parsed from hostile input.
//
// The parser never trusts a length or a count from the wire: the whole
// message is bounded (131072 bytes), header count is bounded, every number is
// range-checked, and a failure names the reason so that the transport layer
// can answer 400 (or drop, for responses and garbage) and count it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::sip {

inline constexpr size_t kMaxMessage = 131072;
inline constexpr size_t kMaxHeaders = 256;

enum class Error : uint8_t {
  kNone,
  kIncomplete,        // stream: more bytes needed
  kTooLarge,          // over kMaxMessage (or too many headers)
  kBadStartLine,      // request or status line malformed
  kBadVersion,        // not SIP/2.0 (a server answers 505)
  kBadHeader,         // header line without a name and colon, bad characters
  kBadContentLength,  // not a number, too large, or missing on a stream
  kBodyTruncated,     // Content-Length larger than the bytes that follow
  kMissingHeader,     // To, From, Call-ID, CSeq or Via missing
  kBadCSeq,           // not "number method", number over 2^31 - 1
  kCSeqMismatch,      // request method differs from the CSeq method
  kBadMaxForwards,    // not 0..255
  kBadVia,            // no sent-protocol / sent-by
  kBadQuoting,        // unbalanced quotes or angle brackets
  kRepeatedHeader,    // a single-value header (Call-ID, CSeq, ...) twice
  kBadAddress,        // To/From/Contact/Route not a valid name-addr or addr-spec
  kBadDate,           // Date not in RFC 1123 GMT form
};
const char* describe(Error e);

struct Header {
  std::string name;   // canonical (compact forms expanded, known names cased)
  std::string value;  // unfolded, surrounding whitespace trimmed
};

struct Message {
  bool request = false;
  std::string method;  // requests
  std::string uri;
  int status = 0;      // responses
  std::string reason;
  // In wire order. Via, Route, Record-Route and Contact are split into one
  // entry per comma-separated value.
  std::vector<Header> headers;
  std::string body;

  // Filled by parse() for the transaction and dialog layers.
  std::string call_id;
  uint32_t cseq = 0;
  std::string cseq_method;
  int max_forwards = -1;  // -1: absent
  std::string top_branch;  // branch parameter of the top Via
  std::string from_tag, to_tag;

  // First value of a header (canonical name, case-insensitive), or null.
  const std::string* get(std::string_view name) const;
  // The first value of `name`, or empty when the header is absent.
  std::string value(std::string_view name) const;
  size_t count(std::string_view name) const;
  // Editing, for the B2BUA and the transaction layer (canonical names).
  void set(std::string_view name, std::string value);  // replaces every entry
  void remove(std::string_view name);
  void add(std::string_view name, std::string value);      // after the last
  void prepend(std::string_view name, std::string value);  // before the first
  // Every value of a header, in order.
  std::vector<std::string> all(std::string_view name) const;
  // The message in canonical form: one header per line, Content-Length set
  // to the body's size.
  std::string serialize() const;
};

// Parses one message from `in`. Datagram mode (stream = false): `in` is the
// whole datagram; bytes after Content-Length are ignored (RFC 3261 18.3), and
// a missing Content-Length means the body runs to the end. Stream mode: the
// message must carry Content-Length; kIncomplete until it is all there.
// *used is the number of bytes consumed on success (stream framing),
// including leading CRLFs (keep-alives).
Error parse(std::string_view in, bool stream, Message* out, size_t* used);

// Canonical header name for a wire name: compact forms expanded ("v" ->
// "Via"), known names in their RFC spelling, unknown names unchanged.
std::string canonical_name(std::string_view name);

// Splits a header value at commas that are outside quotes and <...>.
// Returns false if quotes or brackets are unbalanced or an element is empty
// ("a,,b", a trailing comma).
bool split_list(std::string_view value, std::vector<std::string_view>* out);

// The value of parameter `name` (";name=value", case-insensitive name) in a
// header value, outside quotes and <...>; empty if absent.
std::string param(std::string_view value, std::string_view name);

// The URI of a name-addr or addr-spec header value ("Bob" <sip:b@h>;tag=1
// -> sip:b@h; sip:b@h;tag=1 -> sip:b@h). Empty if there is none.
std::string uri_of(std::string_view value);
// The header parameters after it (";expires=60;+sip.instance=\"<urn:...>\""),
// with their leading ';'; empty when there are none.
std::string params_of(std::string_view value);
// The header value with parameter `name` set (added or replaced) outside
// <...>; an empty `v` writes ";name".
std::string set_param(std::string_view value, std::string_view name, std::string_view v);

// URI escapes (RFC 3261 25.1): "%3B" -> ";" (a malformed escape is kept as
// written), and the escaping a URI header value needs (everything but
// unreserved characters and "[]/?:+$").
std::string unescape(std::string_view s);
std::string escape_header_value(std::string_view s);

// Parts of a SIP URI: sip:user@host:port;params. host is without brackets.
struct Uri {
  std::string scheme;  // sip, sips, tel
  std::string user;
  std::string host;
  uint16_t port = 0;   // 0: absent
  std::string params;  // ";a=b;c" as written (may be empty)
};
bool parse_uri(std::string_view uri, Uri* out);

// A response to `req`: Via, From, To (with `to_tag` added when the To has
// none and the code is above 100), Call-ID and CSeq copied (RFC 3261 8.2.6).
Message make_response(const Message& req, int code, std::string_view reason,
                      std::string_view to_tag = {});

// A random token of `n` characters from [a-z0-9] (tags, branches).
std::string random_token(size_t n);

}  // namespace sluice::sip
