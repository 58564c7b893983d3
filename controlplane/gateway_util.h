// Small helpers shared by the gateway's source files (gateway.cc,
// gateway_state.cc, gateway_relay.cc). Internal: not part of the gateway's
// interface.
#pragma once

#include <cctype>
#include <chrono>
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/sip/message.h"

namespace sluice::cp::util {

inline int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A body relayed as it is, with its Content-Type.
inline void copy_body(const sip::Message& from, sip::Message* to) {
  to->body = from.body;
  if (const std::string* ct = from.get("Content-Type")) to->set("Content-Type", *ct);
}

inline void set_sdp(sip::Message* m, std::string body) {
  m->body = std::move(body);
  m->set("Content-Type", "application/sdp");
}

inline bool has_sdp(const sip::Message& m) {
  if (m.body.empty()) return false;
  const std::string* ct = m.get("Content-Type");
  return ct && lower(*ct).find("application/sdp") != std::string::npos;
}

// The user part of a From/To/Contact value's URI.
inline std::string user_of(const std::string& header_value) {
  sip::Uri u;
  return sip::parse_uri(sip::uri_of(header_value), &u) ? u.user : std::string();
}

inline uint32_t parse_u32(const std::string& s, uint32_t dflt) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos)
    return dflt;
  return static_cast<uint32_t>(std::stoul(s));
}

// Headers a B2BUA writes itself on each leg; everything else passes through.
inline bool own_header(const std::string& n) {
  static const char* kOwn[] = {"Via", "Route", "Record-Route", "Contact", "Call-ID", "CSeq",
                               "From", "To", "Max-Forwards", "Content-Length", "Content-Type",
                               "RAck", "Replaces"};
  for (const char* o : kOwn)
    if (n == o) return true;
  return false;
}

// Whether a message asks for its asserted identity to be withheld from
// outside the trust domain (RFC 3323 "Privacy: id").
inline bool privacy_id(const sip::Message& m) {
  for (const std::string& v : m.all("Privacy")) {
    size_t i = 0;
    while (i <= v.size()) {
      size_t e = std::min(v.find(';', i), v.size());
      size_t a = v.find_first_not_of(" \t", i);
      size_t b = v.find_last_not_of(" \t", e ? e - 1 : 0);
      if (a < e && b != std::string::npos && b >= a && lower(v.substr(a, b - a + 1)) == "id") return true;
      i = e + 1;
    }
  }
  return false;
}

// The headers of a relayed message that pass through (all but our own).
// Identity (RFC 3325): the PBX is the trust domain, the phones are not. So a
// P-Asserted-Identity from a phone never reaches the PBX (its
// P-Preferred-Identity does, for the PBX to assert), and the PBX's reaches
// a phone unless it asks for privacy.
inline void copy_headers(const sip::Message& from, sip::Message* to, bool to_outside) {
  bool withhold = !to_outside || privacy_id(from);
  for (const sip::Header& h : from.headers) {
    if (own_header(h.name)) continue;
    if (withhold && h.name == "P-Asserted-Identity") continue;
    to->headers.push_back(h);
  }
}

// An option-tag list header (Require, Supported, Allow, over one or more
// header lines) with `tag` added, or removed (the header goes when it
// empties). Split here rather than with sip::split_list: these lists have no
// quotes or brackets, and an empty element ("a,,b") must not hide the tags
// after it.
inline std::vector<std::string> option_tags(const sip::Message& m, const char* name) {
  std::vector<std::string> tags;
  for (const std::string& v : m.all(name)) {
    size_t i = 0;
    while (i <= v.size()) {
      size_t e = std::min(v.find(',', i), v.size());
      size_t a = v.find_first_not_of(" \t", i);
      size_t b = v.find_last_not_of(" \t", e ? e - 1 : 0);
      std::string t = a < e && b != std::string::npos && b >= a ? v.substr(a, b - a + 1) : "";
      if (!t.empty()) tags.push_back(t);
      i = e + 1;
    }
  }
  return tags;
}

// Whether the list header carries `tag` (lower case), in any case.
inline bool has_option_tag(const sip::Message& m, const char* name, const std::string& tag) {
  for (const std::string& t : option_tags(m, name))
    if (lower(t) == tag) return true;
  return false;
}

inline void set_option_tags(sip::Message* m, const char* name, const std::vector<std::string>& tags) {
  m->remove(name);
  std::string v;
  for (const std::string& t : tags) v += (v.empty() ? "" : ", ") + t;
  if (!v.empty()) m->add(name, v);
}

inline void add_option_tag(sip::Message* m, const char* name, const std::string& tag) {
  std::vector<std::string> tags = option_tags(*m, name);
  for (const std::string& t : tags)
    if (lower(t) == tag) return;
  tags.push_back(tag);
  set_option_tags(m, name, tags);
}

inline void drop_option_tag(sip::Message* m, const char* name, const std::string& tag) {
  std::vector<std::string> tags = option_tags(*m, name);
  std::vector<std::string> kept;
  for (const std::string& t : tags)
    if (lower(t) != tag) kept.push_back(t);
  if (kept.size() != tags.size()) set_option_tags(m, name, kept);
}

// A request asking its UAS for a session timer of `s` seconds that the UAS
// refreshes (RFC 4028 7.1, 7.4).
inline void ask_session_timer(sip::Message* m, uint32_t s) {
  m->set("Session-Expires", std::to_string(s) + ";refresher=uas");
  add_option_tag(m, "Supported", "timer");
}

// The session timer's headers gone, for a side that runs no timer.
inline void strip_session_timer(sip::Message* m) {
  m->remove("Session-Expires");
  m->remove("Min-SE");
  drop_option_tag(m, "Require", "timer");
}

// What the gateway relays or answers, for Allow headers.
inline constexpr const char* kAllow =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO, REFER, NOTIFY, SUBSCRIBE, MESSAGE, "
    "PUBLISH, REGISTER";

// The extensions the relay implements itself (Supported; a Require naming
// anything else gets 420).
inline constexpr const char* kSupported = "replaces, timer, 100rel";

}  // namespace sluice::cp::util
