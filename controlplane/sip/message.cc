#include "controlplane/sip/message.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include <openssl/rand.h>

namespace sluice::sip {

namespace {

struct Known {
  const char* name;
  char compact;  // RFC 3261 7.3.3 and later RFCs' compact forms; 0: none
};
// The names the relay reads or rewrites, spelled as their RFCs spell them.
constexpr Known kKnown[] = {
    {"Accept", 0},           {"Accept-Contact", 'a'},   {"Accept-Encoding", 0},
    {"Accept-Language", 0},  {"Alert-Info", 0},         {"Allow", 0},
    {"Allow-Events", 'u'},   {"Authentication-Info", 0}, {"Authorization", 0},
    {"Call-ID", 'i'},        {"Call-Info", 0},          {"Contact", 'm'},
    {"Content-Disposition", 0}, {"Content-Encoding", 'e'}, {"Content-Language", 0},
    {"Content-Length", 'l'}, {"Content-Type", 'c'},     {"CSeq", 0},
    {"Date", 0},             {"Error-Info", 0},         {"Event", 'o'},
    {"Expires", 0},          {"From", 'f'},             {"Identity", 'y'},
    {"Identity-Info", 'n'},  {"In-Reply-To", 0},        {"Max-Forwards", 0},
    {"MIME-Version", 0},     {"Min-Expires", 0},        {"Min-SE", 0},
    {"Organization", 0},     {"Path", 0},               {"Priority", 0},
    {"Proxy-Authenticate", 0}, {"Proxy-Authorization", 0}, {"Proxy-Require", 0},
    {"RAck", 0},             {"Reason", 0},             {"Record-Route", 0},
    {"Refer-To", 'r'},       {"Referred-By", 'b'},      {"Reject-Contact", 'j'},
    {"Replaces", 0},         {"Reply-To", 0},           {"Request-Disposition", 'd'},
    {"Require", 0},          {"Retry-After", 0},        {"Route", 0},
    {"RSeq", 0},             {"Server", 0},             {"Session-Expires", 'x'},
    {"Subject", 's'},        {"Subscription-State", 0}, {"Supported", 'k'},
    {"Timestamp", 0},        {"To", 't'},               {"Unsupported", 0},
    {"User-Agent", 0},       {"Via", 'v'},              {"Warning", 0},
    {"WWW-Authenticate", 0},
};

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool is_ws(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

// RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" /
// "+" / "`" / "'" / "~").
bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-.!%*_+`'~", c) != nullptr;
}
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!token_char(c) || c == '\0') return false;
  return true;
}

// Headers whose values are comma-separated lists the relay walks entry by
// entry (RFC 3261 7.3.1); the others keep their value whole (Authorization
// and Date contain commas that are not separators).
bool split_header(std::string_view canonical) {
  return canonical == "Via" || canonical == "Route" || canonical == "Record-Route" ||
         canonical == "Contact";
}
// Headers with name-addr values: quotes and brackets must balance.
bool name_addr_header(std::string_view c) {
  return c == "To" || c == "From" || c == "Contact" || c == "Route" || c == "Record-Route" ||
         c == "Reply-To" || c == "Refer-To" || c == "Referred-By";
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

// Request-URI: a scheme, a colon, and no whitespace or angle brackets.
bool valid_uri(std::string_view u) {
  size_t colon = u.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(u[0]))) return false;
  for (size_t i = 0; i < colon; ++i) {
    char c = u[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      return false;
  }
  for (char c : u)
    if (c == ' ' || c == '\t' || c == '<' || c == '>' || static_cast<unsigned char>(c) < 0x21)
      return false;
  return colon + 1 < u.size();
}

bool sip_version(std::string_view v) { return ieq(v, "SIP/2.0"); }

// ";name[=value]" parameters after an address or a Via sent-by: no empty
// parameter (";;", a trailing ";") and names are tokens.
bool params_ok(std::string_view p) {
  while (!p.empty()) {
    p = trim(p);
    if (p.empty()) return true;
    if (p[0] != ';') return false;
    p.remove_prefix(1);
    size_t end = 0;
    bool quoted = false;
    while (end < p.size() && (quoted || p[end] != ';')) {
      if (p[end] == '"') quoted = !quoted;
      if (quoted && p[end] == '\\') ++end;
      ++end;
    }
    std::string_view one = trim(p.substr(0, std::min(end, p.size())));
    size_t eq = one.find('=');
    if (!is_token(trim(one.substr(0, eq)))) return false;
    if (eq != std::string_view::npos && trim(one.substr(eq + 1)).empty()) return false;
    p.remove_prefix(std::min(end, p.size()));
  }
  return true;
}

// One To/From/Contact/Route value (RFC 3261 20.10, 25.1): a name-addr
// ([display-name] <URI>) or an addr-spec, then parameters. A display name is
// a quoted string or tokens separated by whitespace; the URI inside < > has
// no whitespace; an addr-spec may not carry '?' headers (it would need < >).
// Where the '<' of a name-addr's URI is (outside a quoted display name,
// before any ';'), or npos for an addr-spec.
size_t name_addr_lt(std::string_view v) {
  bool quoted = false;
  for (size_t i = 0; i < v.size(); ++i) {
    if (quoted) {
      if (v[i] == '\\') ++i;
      else if (v[i] == '"') quoted = false;
      continue;
    }
    if (v[i] == '"') quoted = true;
    else if (v[i] == '<') return i;
    else if (v[i] == ';') break;
  }
  return std::string_view::npos;
}

bool address_ok(std::string_view v, bool star_ok) {
  v = trim(v);
  if (star_ok && v == "*") return true;
  size_t lt = name_addr_lt(v);
  if (lt != std::string_view::npos) {
    std::string_view dn = trim(v.substr(0, lt));
    if (!dn.empty() && dn[0] != '"') {
      for (char c : dn)
        if (!token_char(c) && !is_ws(c)) return false;
    }
    size_t gt = v.find('>', lt);
    if (gt == std::string_view::npos) return false;
    std::string_view uri = v.substr(lt + 1, gt - lt - 1);
    if (uri.empty() || uri.find_first_of(" \t") != std::string_view::npos ||
        uri.find(':') == std::string_view::npos)
      return false;
    return params_ok(v.substr(gt + 1));
  }
  // addr-spec: the URI runs to the first ';' (the rest are header params).
  size_t semi = v.find(';');
  std::string_view uri = trim(v.substr(0, semi));
  if (uri.empty() || uri.find(':') == std::string_view::npos ||
      uri.find_first_of(" \t?,\"") != std::string_view::npos)
    return false;
  return semi == std::string_view::npos || params_ok(v.substr(semi));
}
bool looks_like_version(std::string_view v) { return v.size() > 4 && ieq(v.substr(0, 4), "SIP/"); }

}  // namespace

const char* describe(Error e) {
  switch (e) {
    case Error::kNone: return "ok";
    case Error::kIncomplete: return "incomplete message";
    case Error::kTooLarge: return "message too large";
    case Error::kBadStartLine: return "malformed start line";
    case Error::kBadVersion: return "unsupported SIP version";
    case Error::kBadHeader: return "malformed header";
    case Error::kBadContentLength: return "bad Content-Length";
    case Error::kBodyTruncated: return "body shorter than Content-Length";
    case Error::kMissingHeader: return "missing mandatory header";
    case Error::kBadCSeq: return "bad CSeq";
    case Error::kCSeqMismatch: return "CSeq method does not match the request";
    case Error::kBadMaxForwards: return "bad Max-Forwards";
    case Error::kBadVia: return "bad Via";
    case Error::kBadQuoting: return "unbalanced quotes or brackets, or an empty list element";
    case Error::kRepeatedHeader: return "single-value header repeated";
    case Error::kBadAddress: return "malformed address";
    case Error::kBadDate: return "Date is not in GMT";
  }
  return "?";
}

std::string canonical_name(std::string_view name) {
  if (name.size() == 1) {
    char c = char(std::tolower(static_cast<unsigned char>(name[0])));
    for (const Known& k : kKnown)
      if (k.compact == c) return k.name;
  }
  for (const Known& k : kKnown)
    if (ieq(name, k.name)) return k.name;
  return std::string(name);
}

bool split_list(std::string_view v, std::vector<std::string_view>* out) {
  out->clear();
  bool quoted = false;
  int angle = 0;
  size_t start = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (quoted) {
      if (c == '\\' && i + 1 < v.size()) {
        ++i;  // quoted-pair
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
    } else if (c == '<') {
      if (angle) return false;  // no nesting in SIP
      ++angle;
    } else if (c == '>') {
      if (!angle) return false;
      --angle;
    } else if (c == ',' && !angle) {
      std::string_view item = trim(v.substr(start, i - start));
      if (item.empty()) return false;
      out->push_back(item);
      start = i + 1;
    }
  }
  if (quoted || angle) return false;
  std::string_view item = trim(v.substr(start));
  if (item.empty()) return !out->empty() ? false : true;
  out->push_back(item);
  return true;
}

std::string param(std::string_view v, std::string_view name) {
  bool quoted = false;
  int angle = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
      continue;
    }
    if (c == '"') { quoted = true; continue; }
    if (c == '<') { ++angle; continue; }
    if (c == '>') { if (angle) --angle; continue; }
    if (c != ';' || angle) continue;
    size_t end = i + 1;
    while (end < v.size() && v[end] != ';' && v[end] != ',') ++end;
    std::string_view p = trim(v.substr(i + 1, end - i - 1));
    size_t eq = p.find('=');
    std::string_view pn = trim(p.substr(0, eq));
    if (ieq(pn, name)) return eq == std::string_view::npos ? std::string() : std::string(trim(p.substr(eq + 1)));
    i = end - 1;
  }
  return std::string();
}

const std::string* Message::get(std::string_view name) const {
  for (const Header& h : headers)
    if (ieq(h.name, name)) return &h.value;
  return nullptr;
}

std::string Message::value(std::string_view name) const {
  const std::string* v = get(name);
  return v ? *v : std::string();
}

size_t Message::count(std::string_view name) const {
  size_t n = 0;
  for (const Header& h : headers) n += ieq(h.name, name);
  return n;
}

std::string Message::serialize() const {
  std::string s;
  if (request)
    s = method + " " + uri + " SIP/2.0\r\n";
  else
    s = "SIP/2.0 " + std::to_string(status) + " " + reason + "\r\n";
  for (const Header& h : headers) {
    if (h.name == "Content-Length") continue;
    s += h.name + ": " + h.value + "\r\n";
  }
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  s += body;
  return s;
}

Error parse(std::string_view in, bool stream, Message* out, size_t* used) {
  *out = Message{};
  *used = 0;
  // RFC 3261 7.5: CRLFs before the start line are ignored (and are the
  // RFC 5626 keep-alive on streams).
  size_t skip = 0;
  while (skip + 1 < in.size() && in[skip] == '\r' && in[skip + 1] == '\n') skip += 2;
  if (!stream && in.size() > kMaxMessage) return Error::kTooLarge;
  std::string_view rest = in.substr(skip);
  size_t hdr_end = rest.substr(0, std::min(rest.size(), kMaxMessage)).find("\r\n\r\n");
  if (hdr_end == std::string_view::npos) {
    if (stream) return rest.size() >= kMaxMessage ? Error::kTooLarge : Error::kIncomplete;
    return Error::kBadHeader;  // a datagram without the blank line
  }
  std::string_view head = rest.substr(0, hdr_end + 2);  // each line ends in CRLF
  std::string_view after = rest.substr(hdr_end + 4);

  // Lines; folded lines (starting with SP or HT) continue the header before.
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < head.size();) {
    size_t e = head.find("\r\n", pos);
    lines.push_back(head.substr(pos, e - pos));
    pos = e + 2;
  }
  for (std::string_view l : lines) {
    // NUL only as a quoted-pair inside a quoted string (RFC 3261 25.1); bare
    // CR or LF never.
    bool quoted = false;
    for (size_t i = 0; i < l.size(); ++i) {
      char c = l[i];
      if (c == '\r' || c == '\n') return Error::kBadHeader;
      if (quoted && c == '\\' && i + 1 < l.size()) {
        if (l[i + 1] == '\r' || l[i + 1] == '\n') return Error::kBadHeader;
        ++i;
        continue;
      }
      if (c == '"') quoted = !quoted;
      if (c == '\0' && !quoted) return Error::kBadHeader;
    }
  }

  // Start line.
  std::string_view start = lines[0];
  if (looks_like_version(start)) {
    size_t sp = start.find(' ');
    if (sp == std::string_view::npos) return Error::kBadStartLine;
    if (!sip_version(start.substr(0, sp))) return Error::kBadVersion;
    std::string_view code = start.substr(sp + 1, 3);
    uint64_t v = 0;
    if (code.size() != 3 || !parse_uint(code, 699, &v) || v < 100) return Error::kBadStartLine;
    std::string_view tail = start.substr(sp + 4);
    if (!tail.empty() && tail[0] != ' ') return Error::kBadStartLine;
    out->status = int(v);
    out->reason = std::string(tail.empty() ? tail : tail.substr(1));
  } else {
    // Method SP Request-URI SP SIP-Version, single spaces (RFC 4475 3.1.2.8
    // and 3.1.2.9: extra or trailing whitespace is an error).
    size_t a = start.find(' ');
    if (a == std::string_view::npos) return Error::kBadStartLine;
    size_t b = start.find(' ', a + 1);
    if (b == std::string_view::npos) return Error::kBadStartLine;
    std::string_view method = start.substr(0, a), uri = start.substr(a + 1, b - a - 1),
                     version = start.substr(b + 1);
    if (!is_token(method) || !valid_uri(uri)) return Error::kBadStartLine;
    // RFC 3261 19.1.1: no headers component in a SIP Request-URI.
    // The user part may itself hold '?' (RFC 4475 3.1.1.2): look after '@'.
    if (ieq(uri.substr(0, 4), "sip:") || ieq(uri.substr(0, 5), "sips:")) {
      size_t at = uri.rfind('@');
      if (uri.find('?', at == std::string_view::npos ? 0 : at) != std::string_view::npos)
        return Error::kBadStartLine;
    }
    if (version.find(' ') != std::string_view::npos || version.find('\t') != std::string_view::npos)
      return Error::kBadStartLine;
    if (!sip_version(version)) return looks_like_version(version) ? Error::kBadVersion : Error::kBadStartLine;
    out->request = true;
    out->method = std::string(method);
    out->uri = std::string(uri);
  }

  // Headers.
  std::vector<Header> raw;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view l = lines[i];
    if (!l.empty() && is_ws(l[0])) {
      if (raw.empty()) return Error::kBadHeader;
      std::string_view more = trim(l);
      if (!more.empty()) {
        if (!raw.back().value.empty()) raw.back().value += ' ';
        raw.back().value += more;
      }
      continue;
    }
    size_t colon = l.find(':');
    if (colon == std::string_view::npos) return Error::kBadHeader;
    std::string_view name = trim(l.substr(0, colon));
    if (!is_token(name)) return Error::kBadHeader;
    raw.push_back({canonical_name(name), std::string(trim(l.substr(colon + 1)))});
    if (raw.size() > kMaxHeaders) return Error::kTooLarge;
  }
  std::vector<std::string_view> items;
  for (Header& h : raw) {
    bool split = split_header(h.name);
    if ((split || name_addr_header(h.name)) && !split_list(h.value, &items))
      return Error::kBadQuoting;
    if (split) {
      for (std::string_view it : items) out->headers.push_back({h.name, std::string(it)});
      if (out->headers.size() > kMaxHeaders) return Error::kTooLarge;
    } else {
      out->headers.push_back(std::move(h));
    }
  }

  // Single-value headers (RFC 3261 7.3.1) must not repeat.
  for (const char* one : {"Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Type"})
    if (out->count(one) > 1) return Error::kRepeatedHeader;
  for (const Header& h : out->headers) {
    bool contact = h.name == "Contact";
    if (contact || h.name == "To" || h.name == "From" || h.name == "Route" ||
        h.name == "Record-Route" || h.name == "Reply-To") {
      if (h.name == "To" || h.name == "From") {
        if (!split_list(h.value, &items) || items.size() != 1) return Error::kBadAddress;
      }
      if (!address_ok(h.value, contact)) return Error::kBadAddress;
    } else if (h.name == "Via") {
      size_t semi = h.value.find(';');
      if (semi != std::string::npos && !params_ok(std::string_view(h.value).substr(semi)))
        return Error::kBadVia;
    } else if (h.name == "Date") {
      std::string_view d = trim(h.value);
      if (d.size() < 4 || d.substr(d.size() - 4) != " GMT") return Error::kBadDate;
    }
  }

  // Content-Length and the body.
  const std::string* cl = out->get("Content-Length");
  uint64_t len = 0;
  if (cl) {
    if (!parse_uint(*cl, kMaxMessage, &len)) return Error::kBadContentLength;
    for (const Header& h : out->headers)
      if (h.name == "Content-Length" && h.value != *cl) return Error::kBadContentLength;
  } else if (stream) {
    return Error::kBadContentLength;  // RFC 3261 18.3: mandatory on streams
  }
  if (skip + hdr_end + 4 + len > kMaxMessage) return Error::kTooLarge;
  if (cl) {
    if (after.size() < len) return stream ? Error::kIncomplete : Error::kBodyTruncated;
    out->body = std::string(after.substr(0, len));
  } else {
    out->body = std::string(after);
  }
  *used = skip + hdr_end + 4 + (cl ? len : after.size());

  // Mandatory headers (RFC 3261 8.1.1) and the fields the layers above use.
  const std::string* call_id = out->get("Call-ID");
  const std::string* cseq = out->get("CSeq");
  if (!call_id || call_id->empty() || !cseq || !out->get("From") || !out->get("To") ||
      !out->get("Via"))
    return Error::kMissingHeader;
  out->call_id = *call_id;
  {
    std::string_view c = *cseq;
    size_t i = 0;
    while (i < c.size() && std::isdigit(static_cast<unsigned char>(c[i]))) ++i;
    uint64_t n = 0;
    if (!parse_uint(c.substr(0, i), 0x7fffffff, &n)) return Error::kBadCSeq;
    std::string_view m = trim(c.substr(i));
    if (i == c.size() || !is_ws(c[i]) || !is_token(m)) return Error::kBadCSeq;
    out->cseq = uint32_t(n);
    out->cseq_method = std::string(m);
    if (out->request && out->cseq_method != out->method) return Error::kCSeqMismatch;
  }
  if (const std::string* mf = out->get("Max-Forwards")) {
    uint64_t v = 0;
    if (!parse_uint(*mf, 255, &v)) return Error::kBadMaxForwards;
    out->max_forwards = int(v);
  }
  {
    // sent-protocol "SIP/2.0/transport" (LWS allowed around the slashes)
    // then sent-by.
    std::string_view via = *out->get("Via");
    std::string compact;
    size_t i = 0;
    int slashes = 0;
    for (; i < via.size(); ++i) {
      char c = via[i];
      if (is_ws(c)) {
        size_t j = i;
        while (j < via.size() && is_ws(via[j])) ++j;
        bool slash_near = (j < via.size() && via[j] == '/') || (!compact.empty() && compact.back() == '/');
        if (slash_near) continue;
        if (slashes == 2) break;
        return Error::kBadVia;
      }
      if (c == '/') ++slashes;
      compact += c;
    }
    if (slashes != 2 || !ieq(compact.substr(0, 8), "SIP/2.0/") || compact.size() <= 8)
      return Error::kBadVia;
    std::string_view sent_by = trim(via.substr(i));
    if (sent_by.empty() || sent_by[0] == ';') return Error::kBadVia;
    out->top_branch = param(via, "branch");
  }
  out->from_tag = param(*out->get("From"), "tag");
  out->to_tag = param(*out->get("To"), "tag");
  return Error::kNone;
}


void Message::set(std::string_view name, std::string value) {
  for (size_t i = 0; i < headers.size(); ++i) {
    if (!ieq(headers[i].name, name)) continue;
    headers[i].value = std::move(value);
    size_t j = i + 1;
    for (size_t k = i + 1; k < headers.size(); ++k)
      if (!ieq(headers[k].name, name)) {
        if (j != k) headers[j] = std::move(headers[k]);  // never self-move
        ++j;
      }
    headers.resize(j);
    return;
  }
  add(name, std::move(value));
}

void Message::remove(std::string_view name) {
  headers.erase(std::remove_if(headers.begin(), headers.end(),
                               [&](const Header& h) { return ieq(h.name, name); }),
                headers.end());
}

void Message::add(std::string_view name, std::string value) {
  size_t at = headers.size();
  for (size_t i = headers.size(); i-- > 0;)
    if (ieq(headers[i].name, name)) { at = i + 1; break; }
  headers.insert(headers.begin() + at, Header{canonical_name(name), std::move(value)});
}

void Message::prepend(std::string_view name, std::string value) {
  size_t at = headers.size();
  for (size_t i = 0; i < headers.size(); ++i)
    if (ieq(headers[i].name, name)) { at = i; break; }
  headers.insert(headers.begin() + at, Header{canonical_name(name), std::move(value)});
}

std::vector<std::string> Message::all(std::string_view name) const {
  std::vector<std::string> out;
  for (const Header& h : headers)
    if (ieq(h.name, name)) out.push_back(h.value);
  return out;
}

std::string params_of(std::string_view v) {
  v = trim(v);
  size_t lt = name_addr_lt(v);
  if (lt != std::string_view::npos) {
    size_t end = v.find('>', lt + 1);  // a URI has no '>'; a quoted param may
    return end == std::string_view::npos ? std::string() : std::string(v.substr(end + 1));
  }
  size_t semi = v.find(';');
  return semi == std::string_view::npos ? std::string() : std::string(v.substr(semi));
}

std::string uri_of(std::string_view v) {
  v = trim(v);
  size_t lt = name_addr_lt(v);
  if (lt != std::string_view::npos) {
    size_t end = v.find('>', lt + 1);
    if (end == std::string_view::npos) return std::string();
    return std::string(trim(v.substr(lt + 1, end - lt - 1)));
  }
  // addr-spec: header parameters follow the first ';'.
  return std::string(trim(v.substr(0, v.find(';'))));
}

std::string set_param(std::string_view value, std::string_view name, std::string_view v) {
  std::string out(value);
  // Find the parameter area: after the closing '>' of a name-addr, else the
  // whole value (addr-spec headers carry their parameters after the URI).
  size_t from = 0;
  size_t gt = out.rfind('>');
  if (gt != std::string::npos) from = gt + 1;
  std::string want = std::string(name);
  size_t i = from;
  while ((i = out.find(';', i)) != std::string::npos) {
    size_t end = out.find(';', i + 1);
    if (end == std::string::npos) end = out.size();
    std::string_view p = trim(std::string_view(out).substr(i + 1, end - i - 1));
    std::string_view pn = trim(p.substr(0, p.find('=')));
    if (ieq(pn, want)) {
      out.erase(i, end - i);
      break;
    }
    i = end;
  }
  out += ";" + want;
  if (!v.empty()) out += "=" + std::string(v);
  return out;
}

bool parse_uri(std::string_view u, Uri* out) {
  *out = Uri{};
  u = trim(u);
  size_t colon = u.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  out->scheme = std::string(u.substr(0, colon));
  for (char& c : out->scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = u.substr(colon + 1);
  size_t q = rest.find('?');
  if (q != std::string_view::npos) rest = rest.substr(0, q);
  size_t at = rest.rfind('@');
  std::string_view hostpart = rest;
  if (at != std::string_view::npos) {
    std::string_view user = rest.substr(0, at);
    size_t up = user.find(':');  // user:password
    out->user = std::string(user.substr(0, up));
    hostpart = rest.substr(at + 1);
  }
  size_t semi = hostpart.find(';');
  if (semi != std::string_view::npos) {
    out->params = std::string(hostpart.substr(semi));
    hostpart = hostpart.substr(0, semi);
  }
  if (hostpart.empty()) return false;
  if (hostpart.front() == '[') {
    size_t rb = hostpart.find(']');
    if (rb == std::string_view::npos) return false;
    out->host = std::string(hostpart.substr(1, rb - 1));
    hostpart = hostpart.substr(rb + 1);
    if (!hostpart.empty() && hostpart.front() != ':') return false;
  } else {
    size_t pc = hostpart.find(':');
    out->host = std::string(hostpart.substr(0, pc));
    hostpart = pc == std::string_view::npos ? std::string_view() : hostpart.substr(pc);
  }
  if (out->host.empty()) return false;
  if (!hostpart.empty()) {
    std::string_view p = hostpart.substr(1);
    if (p.empty() || p.size() > 5) return false;
    uint32_t n = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + static_cast<uint32_t>(c - '0');
    }
    if (n == 0 || n > 65535) return false;
    out->port = static_cast<uint16_t>(n);
  }
  return true;
}

std::string unescape(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    int hi = 0, lo = 0;
    if (s[i] == '%' && i + 2 < s.size() && (hi = hex(s[i + 1])) >= 0 && (lo = hex(s[i + 2])) >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string escape_header_value(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || (c != '\0' && std::strchr("-_.!~*'()[]/?:+$", c) != nullptr)) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

Message make_response(const Message& req, int code, std::string_view reason,
                      std::string_view to_tag) {
  Message r;
  r.request = false;
  r.status = code;
  r.reason = std::string(reason);
  for (const Header& h : req.headers) {
    if (h.name == "Via" || h.name == "From" || h.name == "Call-ID" || h.name == "CSeq" ||
        (h.name == "Record-Route" && code > 100 && code < 300)) {
      r.headers.push_back(h);
    } else if (h.name == "To") {
      Header t = h;
      if (code > 100 && !to_tag.empty() && param(t.value, "tag").empty())
        t.value = set_param(t.value, "tag", to_tag);
      r.headers.push_back(std::move(t));
    }
  }
  r.call_id = req.call_id;
  r.cseq = req.cseq;
  r.cseq_method = req.cseq_method;
  r.top_branch = req.top_branch;
  r.from_tag = req.from_tag;
  const std::string* to = r.get("To");
  r.to_tag = to ? param(*to, "tag") : std::string();
  return r;
}

std::string random_token(size_t n) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out(n, 'x');
  unsigned char buf[64];
  size_t have = 0, used = 0;
  for (size_t i = 0; i < n; ++i) {
    if (used == have) {
      have = std::min(sizeof buf, n - i);
      if (RAND_bytes(buf, static_cast<int>(have)) != 1) {
        for (size_t k = 0; k < have; ++k) buf[k] = static_cast<unsigned char>(std::rand());
      }
      used = 0;
    }
    out[i] = kAlphabet[buf[used++] % 36];
  }
  return out;
}

}  // namespace sluice::sip
