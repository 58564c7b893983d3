#include "controlplane/net/srv.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace sluice::net {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

// One query; the parsed response in *msg (backed by *buf).
bool query(res_state st, const std::string& name, int type, std::vector<unsigned char>* buf,
           ns_msg* msg, std::string* err) {
  buf->resize(8192);
  int n = res_nquery(st, name.c_str(), ns_c_in, type, buf->data(), static_cast<int>(buf->size()));
  if (n < 0) {
    *err = name + ": " + (st->res_h_errno == HOST_NOT_FOUND ? "no such name" : hstrerror(st->res_h_errno));
    return false;
  }
  if (ns_initparse(buf->data(), std::min<int>(n, static_cast<int>(buf->size())), msg) < 0) {
    *err = name + ": malformed DNS response";
    return false;
  }
  return true;
}

// The A records of a section: name -> (address, ttl).
void a_records(ns_msg& msg, ns_sect sect, std::map<std::string, std::pair<uint32_t, uint32_t>>* out) {
  for (int i = 0; i < ns_msg_count(msg, sect); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, sect, i, &rr) < 0) continue;
    if (ns_rr_type(rr) != ns_t_a || ns_rr_rdlen(rr) != 4) continue;
    uint32_t ip;
    memcpy(&ip, ns_rr_rdata(rr), 4);
    (*out)[lower(ns_rr_name(rr))] = {ntohl(ip), ns_rr_ttl(rr)};
  }
}

// The system resolver's state for one lookup, closed when done.
struct Resolver {
  struct __res_state st;
  bool ok;
  Resolver() {
    memset(&st, 0, sizeof st);
    ok = res_ninit(&st) == 0;
  }
  ~Resolver() {
    if (ok) res_nclose(&st);
  }
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
};

// The character-string at *p (RFC 1035 3.3), within [p, end).
bool char_string(const unsigned char** p, const unsigned char* end, std::string* out) {
  if (*p >= end || *p + 1 + **p > end) return false;
  out->assign(reinterpret_cast<const char*>(*p + 1), **p);
  *p += 1 + **p;
  return true;
}

}  // namespace

SrvTransport transport_of_srv_name(const std::string& name) {
  std::string n = lower(name);
  if (n.rfind("_sips._tcp.", 0) == 0) return SrvTransport::kTls;
  if (n.rfind("_sip._tcp.", 0) == 0) return SrvTransport::kTcp;
  return SrvTransport::kUdp;
}

std::vector<Naptr> usable_naptrs(std::vector<Naptr> all) {
  std::vector<Naptr> out;
  for (Naptr& n : all) {
    std::string s = lower(n.service), f = lower(n.flags);
    if (f != "s" || (s != "sip+d2u" && s != "sip+d2t" && s != "sips+d2t")) continue;
    if (n.replacement.empty() || n.replacement == ".") continue;
    out.push_back(std::move(n));
  }
  std::stable_sort(out.begin(), out.end(), [](const Naptr& a, const Naptr& b) {
    return a.order != b.order ? a.order < b.order : a.preference < b.preference;
  });
  return out;
}

bool resolve_srv(const std::string& name, std::vector<SrvTarget>* out, uint32_t* ttl,
                 std::string* err) {
  out->clear();
  Resolver r;
  if (!r.ok) {
    *err = "resolver initialisation failed";
    return false;
  }
  res_state st = &r.st;
  std::vector<unsigned char> buf;
  ns_msg msg;
  bool ok = query(st, name, ns_t_srv, &buf, &msg, err);
  uint32_t min_ttl = UINT32_MAX;
  if (ok) {
    std::map<std::string, std::pair<uint32_t, uint32_t>> addrs;
    a_records(msg, ns_s_ar, &addrs);
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
      ns_rr rr;
      if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_srv) continue;
      if (ns_rr_rdlen(rr) < 7) continue;
      const unsigned char* rd = ns_rr_rdata(rr);
      SrvTarget t;
      t.priority = ns_get16(rd);
      t.weight = ns_get16(rd + 2);
      t.port = ns_get16(rd + 4);
      char target[NS_MAXDNAME];
      if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, target, sizeof target) < 0) continue;
      t.target = lower(target);
      if (t.target.empty() || t.target == ".") continue;  // "." : service not offered
      min_ttl = std::min(min_ttl, ns_rr_ttl(rr));
      auto a = addrs.find(t.target);
      if (a == addrs.end()) {
        std::vector<unsigned char> abuf;
        ns_msg amsg;
        std::string aerr;
        if (query(st, t.target, ns_t_a, &abuf, &amsg, &aerr)) a_records(amsg, ns_s_an, &addrs);
        a = addrs.find(t.target);
        if (a == addrs.end()) continue;
      }
      t.ip = a->second.first;
      t.transport = transport_of_srv_name(name);
      min_ttl = std::min(min_ttl, a->second.second);
      out->push_back(t);
    }
    if (out->empty()) {
      *err = name + ": no SRV target with an IPv4 address";
      ok = false;
    }
  }
  *ttl = min_ttl == UINT32_MAX ? 0 : min_ttl;
  return ok;
}

bool resolve_upstream(const std::string& name, std::vector<SrvTarget>* out, uint32_t* ttl,
                      std::string* via, std::string* err) {
  if (!name.empty() && name[0] == '_') {
    *via = name;
    return resolve_srv(name, out, ttl, err);
  }
  std::vector<std::pair<std::string, SrvTransport>> names;  // SRV name, transport
  uint32_t naptr_ttl = UINT32_MAX;
  {
    Resolver r;
    if (!r.ok) {
      *err = "resolver initialisation failed";
      return false;
    }
    std::vector<unsigned char> buf;
    ns_msg msg;
    std::string qerr;
    std::vector<Naptr> all;
    if (query(&r.st, name, ns_t_naptr, &buf, &msg, &qerr)) {
      for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_naptr) continue;
        const unsigned char* p = ns_rr_rdata(rr);
        const unsigned char* end = p + ns_rr_rdlen(rr);
        Naptr n;
        std::string regexp;
        char repl[NS_MAXDNAME];
        if (end - p < 4) continue;
        n.order = ns_get16(p);
        n.preference = ns_get16(p + 2);
        p += 4;
        if (!char_string(&p, end, &n.flags) || !char_string(&p, end, &n.service) ||
            !char_string(&p, end, &regexp) || p >= end)
          continue;
        if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), p, repl, sizeof repl) < 0) continue;
        n.replacement = lower(repl);
        naptr_ttl = std::min(naptr_ttl, ns_rr_ttl(rr));
        all.push_back(std::move(n));
      }
    }
    for (const Naptr& n : usable_naptrs(std::move(all))) {
      std::string s = lower(n.service);
      names.emplace_back(n.replacement, s == "sips+d2t"  ? SrvTransport::kTls
                                        : s == "sip+d2t" ? SrvTransport::kTcp
                                                         : SrvTransport::kUdp);
    }
  }
  bool from_naptr = !names.empty();
  if (!from_naptr)  // RFC 3263 4.1: no NAPTR records, an SRV query per transport
    for (const char* prefix : {"_sips._tcp.", "_sip._tcp.", "_sip._udp."})
      names.emplace_back(prefix + name, transport_of_srv_name(prefix + name));
  std::string last;
  for (const auto& [srv, transport] : names) {
    std::vector<SrvTarget> targets;
    uint32_t t = 0;
    std::string e;
    if (!resolve_srv(srv, &targets, &t, &e)) {
      last = e;
      continue;
    }
    // A NAPTR's service names the transport, whatever its SRV name says.
    for (SrvTarget& target : targets) target.transport = transport;
    *out = std::move(targets);
    *ttl = from_naptr ? std::min(t, naptr_ttl) : t;
    *via = srv;
    return true;
  }
  *err = name + ": " + (from_naptr ? "no NAPTR record leads to an SRV target" : "no NAPTR and no SRV records") +
         (last.empty() ? "" : " (" + last + ")");
  return false;
}

}  // namespace sluice::net
