#include "controlplane/sdp/sdp.h"

#include <cctype>
#include <sstream>

namespace sluice::sdp {

namespace {

std::vector<std::string_view> fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool parse_u16(std::string_view s, uint16_t* out) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint32_t(c - '0');
  }
  if (v > 65535) return false;
  *out = uint16_t(v);
  return true;
}

// c=IN IP4 <addr>[/ttl[/n]] -> address (multicast suffixes dropped).
bool connection(std::string_view v, std::string* addr) {
  auto f = fields(v);
  if (f.size() != 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6")) return false;
  std::string_view a = f[2];
  *addr = std::string(a.substr(0, a.find('/')));
  return !addr->empty();
}

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool ice_attr(std::string_view a) {
  return starts(a, "candidate:") || starts(a, "ice-ufrag:") || starts(a, "ice-pwd:") ||
         starts(a, "ice-options:") || a == "end-of-candidates" || a == "ice-lite" ||
         starts(a, "remote-candidates:") || a == "ice-mismatch";
}

std::string switch_profile(const std::string& proto, bool srtp) {
  if (proto == "RTP/AVP" || proto == "RTP/SAVP") return srtp ? "RTP/SAVP" : "RTP/AVP";
  if (proto == "RTP/AVPF" || proto == "RTP/SAVPF") return srtp ? "RTP/SAVPF" : "RTP/AVPF";
  return proto;  // not RTP (udptl, TCP/MSRP, ...): left alone
}

std::string ip_family(const std::string& addr) {
  return addr.find(':') != std::string::npos ? "IP6" : "IP4";
}

}  // namespace

const char* describe(Error e) {
  switch (e) {
    case Error::kNone: return "ok";
    case Error::kTooLarge: return "SDP too large";
    case Error::kBadLine: return "malformed SDP line";
    case Error::kBadVersion: return "SDP must start with v=0";
    case Error::kBadOrigin: return "malformed o= line";
    case Error::kBadConnection: return "malformed c= line";
    case Error::kBadMedia: return "malformed m= line";
    case Error::kNoConnection: return "media without a connection address";
  }
  return "?";
}

Error parse(std::string_view text, Session* out) {
  *out = Session{};
  if (text.size() > kMaxSize) return Error::kTooLarge;
  size_t nlines = 0;
  bool first = true;
  for (size_t pos = 0; pos < text.size();) {
    size_t e = text.find('\n', pos);
    std::string_view l = text.substr(pos, e == std::string_view::npos ? std::string_view::npos : e - pos);
    pos = e == std::string_view::npos ? text.size() : e + 1;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);  // CRLF or bare LF (RFC 4566 5)
    if (l.empty()) continue;
    if (++nlines > 4096) return Error::kTooLarge;
    if (l.size() < 2 || l[1] != '=' || !std::islower(static_cast<unsigned char>(l[0])))
      return Error::kBadLine;
    for (char c : l)
      if (c == '\0' || c == '\r') return Error::kBadLine;
    char type = l[0];
    std::string_view v = l.substr(2);
    if (first) {
      if (type != 'v' || v != "0") return Error::kBadVersion;
      first = false;
    }
    if (type == 'm') {
      if (out->media.size() == kMaxMedia) return Error::kTooLarge;
      auto f = fields(v);
      if (f.size() < 4) return Error::kBadMedia;
      Media m;
      m.type = std::string(f[0]);
      std::string_view port = f[1];
      size_t slash = port.find('/');
      if (!parse_u16(port.substr(0, slash), &m.port)) return Error::kBadMedia;
      if (slash != std::string_view::npos &&
          (!parse_u16(port.substr(slash + 1), &m.nports) || m.nports == 0))
        return Error::kBadMedia;
      m.proto = std::string(f[2]);
      for (size_t i = 3; i < f.size(); ++i) m.fmts.emplace_back(f[i]);
      out->media.push_back(std::move(m));
      continue;
    }
    Line line{type, std::string(v)};
    if (out->media.empty()) {
      if (type == 'o') {
        auto f = fields(v);
        if (f.size() != 6) return Error::kBadOrigin;
        out->origin_addr = std::string(f[5]);
      } else if (type == 'c' && !connection(v, &out->addr)) {
        return Error::kBadConnection;
      }
      out->lines.push_back(std::move(line));
      continue;
    }
    Media& m = out->media.back();
    if (type == 'c' && !connection(v, &m.addr)) return Error::kBadConnection;
    if (type == 'a') {
      if (v == "rtcp-mux") m.rtcp_mux = true;
      if (v == "sendrecv" || v == "sendonly" || v == "recvonly" || v == "inactive")
        m.direction = std::string(v);
      if (starts(v, "rtcp:")) {
        auto f = fields(v.substr(5));
        if (f.empty() || !parse_u16(f[0], &m.rtcp_port)) return Error::kBadLine;
      }
    }
    m.lines.push_back(std::move(line));
  }
  if (first) return Error::kBadVersion;
  for (Media& m : out->media) {
    if (m.addr.empty()) m.addr = out->addr;
    if (m.addr.empty() && m.port != 0) return Error::kNoConnection;
    if (m.direction.empty()) m.direction = "sendrecv";
  }
  return Error::kNone;
}

std::string serialize(const Session& s) {
  std::string o;
  for (const Line& l : s.lines) o += std::string(1, l.type) + "=" + l.value + "\r\n";
  for (const Media& m : s.media) {
    o += "m=" + m.type + " " + std::to_string(m.port);
    if (m.nports != 1) o += "/" + std::to_string(m.nports);
    o += " " + m.proto;
    for (const std::string& f : m.fmts) o += " " + f;
    o += "\r\n";
    for (const Line& l : m.lines) o += std::string(1, l.type) + "=" + l.value + "\r\n";
  }
  return o;
}

bool parse_crypto(std::string_view v, Crypto* out) {
  *out = Crypto{};
  if (starts(v, "crypto:")) v.remove_prefix(7);
  auto f = fields(v);
  if (f.size() < 3) return false;
  uint32_t tag = 0;
  if (f[0].empty() || f[0].size() > 9) return false;
  for (char c : f[0]) {
    if (c < '0' || c > '9') return false;
    tag = tag * 10 + uint32_t(c - '0');
  }
  out->tag = tag;
  out->suite = std::string(f[1]);
  std::string_view kp = f[2];
  if (!starts(kp, "inline:")) return false;
  kp.remove_prefix(7);
  // key||salt, then optional |lifetime and |MKI:length (RFC 4568 9.1).
  size_t bar = kp.find('|');
  out->key = std::string(kp.substr(0, bar));
  if (out->key.empty()) return false;
  while (bar != std::string_view::npos) {
    kp.remove_prefix(bar + 1);
    bar = kp.find('|');
    std::string_view part = kp.substr(0, bar);
    if (part.find(':') != std::string_view::npos)
      out->mki = std::string(part);
    else
      out->lifetime = std::string(part);
  }
  for (size_t i = 3; i < f.size(); ++i) {
    if (!out->params.empty()) out->params += ' ';
    out->params += std::string(f[i]);
  }
  return true;
}

std::string format_crypto(const Crypto& c) {
  std::string s = "crypto:" + std::to_string(c.tag) + " " + c.suite + " inline:" + c.key;
  if (!c.lifetime.empty()) s += "|" + c.lifetime;
  if (!c.mki.empty()) s += "|" + c.mki;
  if (!c.params.empty()) s += " " + c.params;
  return s;
}

// An o= value with its version (and, unless empty, its address) replaced.
static std::string with_version(std::string_view origin, uint64_t version,
                                std::string_view addr = {}) {
  auto f = fields(origin);
  if (addr.empty()) addr = f[5];
  return std::string(f[0]) + " " + std::string(f[1]) + " " + std::to_string(version) + " IN " +
         ip_family(std::string(addr)) + " " + std::string(addr);
}

std::string rewrite(const Session& in, const std::vector<MediaPlan>& plan,
                    const std::string& origin_addr, uint64_t version) {
  Session out;
  for (const Line& l : in.lines) {
    if (l.type == 'a' && ice_attr(l.value)) continue;
    Line n = l;
    if (l.type == 'o') {
      n.value = with_version(l.value, version, origin_addr);
    } else if (l.type == 'c') {
      continue;  // every media section gets its own c= below
    }
    out.lines.push_back(std::move(n));
  }
  for (size_t i = 0; i < in.media.size(); ++i) {
    const Media& src = in.media[i];
    MediaPlan p;
    if (i < plan.size())
      p = plan[i];
    else
      p.disabled = true;  // no plan for this stream: refuse it
    Media m;
    m.type = src.type;
    m.fmts = src.fmts;
    if (p.disabled || src.port == 0) {
      m.port = 0;
      m.proto = src.proto;
      out.media.push_back(std::move(m));
      continue;
    }
    m.port = p.port;
    m.proto = switch_profile(src.proto, p.srtp);
    // RFC 2543-style hold (c=0.0.0.0) keeps its meaning on the other leg.
    std::string addr = src.addr == "0.0.0.0" ? src.addr : p.addr;
    m.lines.push_back({'c', "IN " + ip_family(addr) + " " + addr});
    bool had_rtcp = false;
    for (const Line& l : src.lines) {
      if (l.type == 'c') continue;
      if (l.type == 'a') {
        if (ice_attr(l.value) || starts(l.value, "crypto:")) continue;
        if (starts(l.value, "rtcp:")) {
          had_rtcp = true;
          continue;  // written below with the relay's port
        }
      }
      m.lines.push_back(l);
    }
    if (had_rtcp) {
      uint16_t rtcp = src.rtcp_mux ? p.port : uint16_t(p.port + 1);
      m.lines.push_back({'a', "rtcp:" + std::to_string(rtcp) + " IN " + ip_family(addr) + " " + addr});
    }
    if (p.srtp)
      for (const Crypto& c : p.crypto) m.lines.push_back({'a', format_crypto(c)});
    out.media.push_back(std::move(m));
  }
  return serialize(out);
}

std::string without_streams(const Session& in, uint32_t off, uint64_t version) {
  Session out = in;
  for (Line& l : out.lines)
    if (l.type == 'o') l.value = with_version(l.value, version);
  for (size_t i = 0; i < out.media.size() && i < 32; ++i) {
    if (!(off >> i & 1)) continue;
    out.media[i].port = 0;
    out.media[i].nports = 1;
    out.media[i].lines.clear();
  }
  return serialize(out);
}

}  // namespace sluice::sdp
