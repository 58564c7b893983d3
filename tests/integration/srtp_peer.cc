// srtp_peer: an SRTP/SRTCP endpoint on kernel UDP sockets, built on the
// distribution's libsrtp2 so the relay's crypto is checked against an
// implementation it shares no code with. The integration tests run it inside
// network namespaces (ip netns exec).
//
//   srtp_peer send --to IP:PORT [--bind IP:PORT] --count N [--interval-us U]
//       [--ssrc X] [--seq S] [--roc R] [--pt P] [--size BYTES] [--suite SUITE]
//       [--key B64] [--rtcp] [--mux-rtcp-every K] [--tamper-every K]
//       [--replay-every K] [--ssrc-change-at I] [--json]
//   srtp_peer recv --bind IP:PORT --count N [--timeout-ms T] [--suite SUITE]
//       [--key B64] [--rtcp] [--json]
//
// Every payload carries its packet counter (big-endian uint64) followed by
// bytes (i*7 + j) & 0xff, so a receiver verifies content without knowing the
// sender's options. RTCP packets are a compound SR + APP("SLCE") whose APP
// data is a 16-byte payload of the same shape. Receiver counters: `received`
// counts datagrams, `ok` those that unprotected and verified (RTCP included,
// `rtcp` is that subset), `bad` those that unprotected but did not verify.
// Sender faults: --tamper-every K flips a bit of every K-th packet after
// protection; --replay-every K sends every K-th datagram twice, byte for byte
// (extra datagrams, not counted in `sent`); mux RTCP is never tampered.
// Exit: 0 done (even if short of --count; the test decides), 1 socket or
// libsrtp setup error, 2 usage error.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <srtp2/srtp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

namespace {

constexpr int kExitSetup = 1;
constexpr int kExitUsage = 2;
constexpr size_t kRtpHdr = 12;
constexpr size_t kMinSize = 16;  // counter + at least 8 pattern bytes
constexpr size_t kMaxSize = 1400;
constexpr size_t kAppData = 16;
constexpr size_t kRtcpLen = 28 + 12 + kAppData;  // SR (no blocks) + APP
constexpr uint16_t kSeqAfterSsrcChange = 40000;
// Upper bound on a whole recv run, whatever arrives: tests must never hang.
constexpr int64_t kRecvHardLimitMs = 300 * 1000;
using Count = unsigned long long;  // printf's %llu without casts

[[noreturn]] void die(int code, const std::string& msg) {
  fprintf(stderr, "srtp_peer: %s\n", msg.c_str());
  exit(code);
}

struct Suite {
  const char* name;
  size_t key_len;  // master key || master salt
  void (*set_policy)(srtp_crypto_policy_t*);
};

// The first setter is a macro, hence the lambda.
const Suite kSuites[] = {
    {"aes_cm_128_hmac_sha1_80", 30,
     [](srtp_crypto_policy_t* p) { srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(p); }},
    {"aes_cm_128_hmac_sha1_32", 30, srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32},
    {"aes_256_cm_hmac_sha1_80", 46, srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80},
    {"aead_aes_128_gcm", 28, srtp_crypto_policy_set_aes_gcm_128_16_auth},
    {"aead_aes_256_gcm", 44, srtp_crypto_policy_set_aes_gcm_256_16_auth},
};

struct Options {
  std::string mode, to, bind, key_b64;
  const Suite* suite = nullptr;  // nullptr: plain RTP/RTCP
  uint64_t count = 0, interval_us = 1000, timeout_ms = 5000;
  uint32_t ssrc = 0x11223344, roc = 0;
  uint16_t seq = 1;
  uint8_t pt = 0;
  size_t size = 160;
  bool rtcp = false, json = false, have_roc = false;
  uint64_t mux_rtcp_every = 0, tamper_every = 0, replay_every = 0;
  int64_t ssrc_change_at = -1;
};

uint64_t parse_num(const std::string& name, const std::string& v, uint64_t max) {
  errno = 0;
  char* end = nullptr;
  unsigned long long n = strtoull(v.c_str(), &end, 0);  // 0x... accepted for SSRCs
  if (v.empty() || v[0] == '-' || *end != '\0' || errno != 0 || n > max)
    die(kExitUsage, "--" + name + ": expected a number <= " + std::to_string(max));
  return n;
}

sockaddr_in parse_addr(const std::string& name, const std::string& v) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  size_t colon = v.rfind(':');
  if (colon == std::string::npos ||
      inet_pton(AF_INET, v.substr(0, colon).c_str(), &a.sin_addr) != 1)
    die(kExitUsage, "--" + name + ": expected IPv4:PORT, got '" + v + "'");
  a.sin_port = htons(uint16_t(parse_num(name, v.substr(colon + 1), 65535)));
  return a;
}

std::string format_addr(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

// Strict: a key that does not decode must not silently become another key.
bool base64_decode(const std::string& in, std::vector<uint8_t>* out) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (in.size() % 4 != 0) return false;
  uint32_t acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (size_t i = 0; i < in.size(); i++) {
    if (in[i] == '=') {
      if (i + 2 < in.size() || ++pad > 2) return false;
      continue;
    }
    size_t v = kAlphabet.find(in[i]);
    if (v == std::string::npos || pad) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(uint8_t(acc >> bits));
    }
  }
  return true;
}

Options parse_args(int argc, char** argv) {
  Options o;
  if (argc < 2) die(kExitUsage, "usage: srtp_peer send|recv --name value ...");
  o.mode = argv[1];
  if (o.mode == "echo") die(kExitUsage, "echo mode is not implemented");
  if (o.mode != "send" && o.mode != "recv") die(kExitUsage, "unknown mode '" + o.mode + "'");
  const bool send = o.mode == "send";
  std::string suite = "none";
  using Setter = std::function<void(const std::string& name, const std::string& value)>;
  auto num = [](auto* field, uint64_t max) -> Setter {
    return [=](const std::string& name, const std::string& v) {
      *field = static_cast<std::remove_pointer_t<decltype(field)>>(parse_num(name, v, max));
    };
  };
  auto str = [](std::string* field) -> Setter {
    return [=](const std::string&, const std::string& v) { *field = v; };
  };
  // Option -> (modes that take it, setter); flags have no setter.
  // clang-format off
  const std::map<std::string, std::pair<const char*, Setter>> options = {
      {"to", {"s", str(&o.to)}},               {"bind", {"sr", str(&o.bind)}},
      {"count", {"sr", num(&o.count, 100000000)}},
      {"interval-us", {"s", num(&o.interval_us, 10000000)}},
      {"ssrc", {"s", num(&o.ssrc, 0xffffffffu)}}, {"seq", {"s", num(&o.seq, 65535)}},
      {"roc", {"s", num(&o.roc, 0xffffffffu)}},   {"pt", {"s", num(&o.pt, 127)}},
      {"size", {"s", num(&o.size, kMaxSize)}},    {"suite", {"sr", str(&suite)}},
      {"key", {"sr", str(&o.key_b64)}},
      {"mux-rtcp-every", {"s", num(&o.mux_rtcp_every, 1u << 30)}},
      {"tamper-every", {"s", num(&o.tamper_every, 1u << 30)}},
      {"replay-every", {"s", num(&o.replay_every, 1u << 30)}},
      {"ssrc-change-at", {"s", num(&o.ssrc_change_at, 100000000)}},
      {"timeout-ms", {"r", num(&o.timeout_ms, 600000)}},
      {"rtcp", {"sr", nullptr}},               {"json", {"sr", nullptr}}};
  // clang-format on
  std::set<std::string> seen;
  for (int i = 2; i < argc; i++) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) die(kExitUsage, "unexpected argument '" + arg + "'");
    std::string name = arg.substr(2);
    auto it = options.find(name);
    if (it == options.end() || !strchr(it->second.first, o.mode[0]))
      die(kExitUsage, "unknown option --" + name + " for " + o.mode);
    seen.insert(name);
    if (!it->second.second) {
      (name == "rtcp" ? o.rtcp : o.json) = true;
    } else if (i + 1 < argc) {
      it->second.second(name, argv[++i]);
    } else {
      die(kExitUsage, "--" + name + " needs a value");
    }
  }
  o.have_roc = seen.count("roc") != 0;
  if (!seen.count("count")) die(kExitUsage, "--count is required");
  if (send && o.to.empty()) die(kExitUsage, "send needs --to");
  if (!send && o.bind.empty()) die(kExitUsage, "recv needs --bind");
  if (o.size < kMinSize) die(kExitUsage, "--size must be >= " + std::to_string(kMinSize));
  if (o.rtcp && o.mux_rtcp_every) die(kExitUsage, "--rtcp and --mux-rtcp-every exclude each other");
  if (suite != "none") {
    for (const Suite& s : kSuites)
      if (suite == s.name) o.suite = &s;
    if (!o.suite) die(kExitUsage, "unknown --suite '" + suite + "'");
    if (o.key_b64.empty()) die(kExitUsage, "--suite " + suite + " needs --key");
  }
  return o;
}

// The policy's key pointer must stay valid only until srtp_create returns.
srtp_t make_session(const Options& o, std::vector<uint8_t>* key) {
  srtp_policy_t p[2];
  memset(p, 0, sizeof p);
  for (srtp_policy_t& q : p) {
    o.suite->set_policy(&q.rtp);
    q.rtcp = q.rtp;
    // SRTCP keeps the 80-bit tag even with the _32 suite (RFC 4568 6.2.1).
    if (q.rtcp.auth_tag_len == 4) q.rtcp.auth_tag_len = 10;
    q.key = key->data();
    q.window_size = 128;
  }
  if (o.mode == "recv") {
    // Any SSRC, so SSRC changes and rtcp-mux streams clone the template.
    p[0].ssrc.type = ssrc_any_inbound;
  } else {
    // Specific streams exist right after srtp_create, which --roc needs.
    p[0].ssrc = {ssrc_specific, o.ssrc};
    if (o.ssrc_change_at >= 0) {
      p[1].ssrc = {ssrc_specific, o.ssrc + 1};
      p[0].next = &p[1];
    }
  }
  srtp_t s = nullptr;
  srtp_err_status_t st = srtp_create(&s, p);
  if (st != srtp_err_status_ok) die(kExitSetup, "srtp_create failed, status " + std::to_string(st));
  if (o.have_roc && (st = srtp_set_stream_roc(s, o.ssrc, o.roc)) != srtp_err_status_ok)
    die(kExitSetup, "srtp_set_stream_roc failed, status " + std::to_string(st));
  return s;
}

void store16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }
void store32(uint8_t* p, uint32_t v) {
  store16(p, uint16_t(v >> 16));
  store16(p + 2, uint16_t(v));
}
uint16_t load16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t load32(const uint8_t* p) { return uint32_t(load16(p)) << 16 | load16(p + 2); }

void fill_payload(uint8_t* p, size_t n, uint64_t counter) {
  for (size_t j = 0; j < n; j++)
    p[j] = j < 8 ? uint8_t(counter >> (56 - 8 * j)) : uint8_t(counter * 7 + j);
}

bool check_payload(const uint8_t* p, size_t n) {
  if (n < kMinSize) return false;
  uint64_t counter = 0;
  for (size_t j = 0; j < 8; j++) counter = counter << 8 | p[j];
  for (size_t j = 8; j < n; j++)
    if (p[j] != uint8_t(counter * 7 + j)) return false;
  return true;
}

size_t build_rtp(uint8_t* b, const Options& o, uint16_t seq, uint32_t ts, uint32_t ssrc,
                 uint64_t i) {
  b[0] = 0x80;
  b[1] = o.pt;
  store16(b + 2, seq);
  store32(b + 4, ts);
  store32(b + 8, ssrc);
  fill_payload(b + kRtpHdr, o.size, i);
  return kRtpHdr + o.size;
}

size_t build_rtcp(uint8_t* b, uint32_t ssrc, uint32_t rtp_ts, uint32_t pkts, uint32_t octets,
                  uint64_t counter) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  b[0] = 0x80;  // SR, no report blocks
  b[1] = 200;
  store16(b + 2, 6);
  store32(b + 4, ssrc);
  store32(b + 8, uint32_t(now.tv_sec + 2208988800u));  // NTP epoch is 1900
  store32(b + 12, uint32_t((uint64_t(now.tv_nsec) << 32) / 1000000000u));
  store32(b + 16, rtp_ts);
  store32(b + 20, pkts);
  store32(b + 24, octets);
  uint8_t* app = b + 28;
  app[0] = 0x80;  // subtype 0
  app[1] = 204;
  store16(app + 2, uint16_t((12 + kAppData) / 4 - 1));
  store32(app + 4, ssrc);
  memcpy(app + 8, "SLCE", 4);
  fill_payload(app + 12, kAppData, counter);
  return kRtcpLen;
}

bool verify_rtp(const uint8_t* b, size_t n, uint32_t* ssrc) {
  if (n < kRtpHdr || (b[0] >> 6) != 2) return false;
  size_t hdr = kRtpHdr + 4 * (b[0] & 0x0f);
  if ((b[0] & 0x10) && n < hdr + 4) return false;
  if (b[0] & 0x10) hdr += 4 + 4 * size_t(load16(b + hdr + 2));
  size_t pad = (b[0] & 0x20) ? b[n - 1] : 0;
  if (hdr + pad > n) return false;
  *ssrc = load32(b + 8);
  return check_payload(b + hdr, n - hdr - pad);
}

// The compound must parse exactly and contain our APP packet with the sender's SSRC.
bool verify_rtcp(const uint8_t* b, size_t n, uint32_t* ssrc) {
  bool found = false;
  size_t off = 0;
  while (off < n) {
    if (n - off < 8 || (b[off] >> 6) != 2) return false;
    size_t len = 4 * (size_t(load16(b + off + 2)) + 1);
    if (len > n - off) return false;
    if (off == 0) {
      if (b[1] != 200 && b[1] != 201) return false;
      *ssrc = load32(b + 4);
    }
    if (b[off + 1] == 204 && len == 12 + kAppData && memcmp(b + off + 8, "SLCE", 4) == 0) {
      if (load32(b + off + 4) != *ssrc || !check_payload(b + off + 12, kAppData)) return false;
      found = true;
    }
    off += len;
  }
  return found;
}

int open_socket(const std::string& bind_to) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die(kExitSetup, std::string("socket: ") + strerror(errno));
  // No SO_REUSEADDR: UDP has no TIME_WAIT, and with it two peers could
  // silently share a port; a clash must fail loudly instead.
  int rcvbuf = 1 << 22;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);  // best effort
  if (!bind_to.empty()) {
    sockaddr_in a = parse_addr("bind", bind_to);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      die(kExitSetup, "bind " + bind_to + ": " + strerror(errno));
  }
  return fd;
}

void protect(srtp_t s, uint8_t* b, size_t* len, bool rtcp) {
  if (!s) return;
  int n = int(*len);
  srtp_err_status_t st = rtcp ? srtp_protect_rtcp(s, b, &n) : srtp_protect(s, b, &n);
  if (st != srtp_err_status_ok)
    die(kExitSetup, "srtp_protect failed, status " + std::to_string(st));
  *len = size_t(n);
}

int run_send(const Options& o, srtp_t s) {
  int fd = open_socket(o.bind);
  sockaddr_in to = parse_addr("to", o.to);
  uint8_t buf[kMaxSize + kRtpHdr + SRTP_MAX_TRAILER_LEN];
  Count sent = 0, tampered = 0, replayed = 0, rtcp = 0, errors = 0, rtp_octets = 0;
  uint32_t rtp_pkts = 0;
  auto xmit = [&](const uint8_t* p, size_t n) {
    // Counted, not fatal: a transient ENOBUFS must not lose the report.
    if (sendto(fd, p, n, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0) errors++;
  };
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (uint64_t i = 0; i < o.count; i++) {
    bool changed = o.ssrc_change_at >= 0 && i >= uint64_t(o.ssrc_change_at);
    uint32_t ssrc = o.ssrc + (changed ? 1 : 0);
    uint16_t seq = changed ? uint16_t(kSeqAfterSsrcChange + (i - uint64_t(o.ssrc_change_at)))
                           : uint16_t(o.seq + i);
    uint32_t ts = uint32_t(i * 160);
    size_t len = o.rtcp ? build_rtcp(buf, ssrc, ts, 0, 0, i) : build_rtp(buf, o, seq, ts, ssrc, i);
    size_t plain_len = len;
    protect(s, buf, &len, o.rtcp);
    if (o.tamper_every && (i + 1) % o.tamper_every == 0) {
      buf[plain_len - 1] ^= 0x01;  // last payload byte: encrypted and authenticated in every suite
      tampered++;
    }
    xmit(buf, len);
    sent++;
    rtcp += o.rtcp ? 1 : 0;
    rtp_pkts += o.rtcp ? 0 : 1;
    rtp_octets += o.rtcp ? 0 : o.size;
    if (o.replay_every && (i + 1) % o.replay_every == 0) {
      xmit(buf, len);
      replayed++;
    }
    if (o.mux_rtcp_every && (i + 1) % o.mux_rtcp_every == 0) {
      size_t n = build_rtcp(buf, ssrc, ts, rtp_pkts, uint32_t(rtp_octets), rtcp);
      protect(s, buf, &n, true);
      xmit(buf, n);
      rtcp++;
    }
    if (o.interval_us && i + 1 < o.count) {
      next.tv_nsec += long(o.interval_us % 1000000) * 1000;
      next.tv_sec += time_t(o.interval_us / 1000000 + next.tv_nsec / 1000000000);
      next.tv_nsec %= 1000000000;
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
      }
    }
  }
  close(fd);
  const char* fmt = o.json
                        ? "{\"mode\":\"send\",\"sent\":%llu,\"tampered\":%llu,\"replayed\":%llu,"
                          "\"rtcp\":%llu,\"errors\":%llu}\n"
                        : "send: sent %llu, tampered %llu, replayed %llu, rtcp %llu, errors %llu\n";
  printf(fmt, sent, tampered, replayed, rtcp, errors);
  return 0;
}

int64_t now_ms() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

int run_recv(const Options& o, srtp_t s) {
  int fd = open_socket(o.bind);
  Count received = 0, ok = 0, bad = 0, auth_fail = 0, replay_fail = 0, other_fail = 0, rtcp = 0;
  std::set<uint32_t> ssrcs;
  std::map<std::string, Count> sources;
  static uint8_t buf[65536 + SRTP_MAX_TRAILER_LEN];
  const int64_t hard_deadline = now_ms() + kRecvHardLimitMs;
  while (ok < o.count) {
    int64_t wait = std::min<int64_t>(int64_t(o.timeout_ms), hard_deadline - now_ms());
    if (wait <= 0) break;
    pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, int(wait));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die(kExitSetup, std::string("poll: ") + strerror(errno));
    if (r == 0) break;  // idle for --timeout-ms
    sockaddr_in src{};
    socklen_t slen = sizeof src;
    ssize_t n = recvfrom(fd, buf, 65536, 0, reinterpret_cast<sockaddr*>(&src), &slen);
    if (n < 0) continue;
    received++;
    sources[format_addr(src)]++;
    // RFC 5761 demultiplexing: RTCP packet types 192..223 sit where RTP has M+PT.
    bool is_rtcp = o.rtcp || (n >= 2 && buf[1] >= 192 && buf[1] <= 223);
    int len = int(n);
    if (s) {
      srtp_err_status_t st =
          is_rtcp ? srtp_unprotect_rtcp(s, buf, &len) : srtp_unprotect(s, buf, &len);
      if (st == srtp_err_status_auth_fail)
        auth_fail++;
      else if (st == srtp_err_status_replay_fail || st == srtp_err_status_replay_old)
        replay_fail++;
      else if (st != srtp_err_status_ok)
        other_fail++;
      if (st != srtp_err_status_ok) continue;
    }
    uint32_t ssrc = 0;
    if (!(is_rtcp ? verify_rtcp(buf, size_t(len), &ssrc) : verify_rtp(buf, size_t(len), &ssrc))) {
      bad++;
      continue;
    }
    ok++;
    if (is_rtcp) rtcp++;
    ssrcs.insert(ssrc);
  }
  close(fd);
  std::string ssrc_list, source_list;
  for (uint32_t x : ssrcs) {
    char hex[16];
    snprintf(hex, sizeof hex, "0x%08x", x);
    ssrc_list += (ssrc_list.empty() ? "" : ",") + (o.json ? "\"" + std::string(hex) + "\"" : hex);
  }
  for (const auto& [addr, cnt] : sources) {
    source_list += source_list.empty() ? "" : ",";
    source_list +=
        o.json ? "\"" + addr + "\":" + std::to_string(cnt) : addr + "=" + std::to_string(cnt);
  }
  const char* fmt =
      o.json ? "{\"mode\":\"recv\",\"received\":%llu,\"ok\":%llu,\"bad\":%llu,\"auth_fail\":%llu,"
               "\"replay_fail\":%llu,\"other_fail\":%llu,\"rtcp\":%llu,\"ssrcs\":[%s],\"sources\":{"
               "%s}}\n"
             : "recv: received %llu, ok %llu, bad %llu, auth_fail %llu, replay_fail %llu, "
               "other_fail %llu, rtcp %llu, ssrcs [%s], sources {%s}\n";
  printf(fmt, received, ok, bad, auth_fail, replay_fail, other_fail, rtcp, ssrc_list.c_str(),
         source_list.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  srtp_t session = nullptr;
  std::vector<uint8_t> key;
  if (o.suite) {
    // The key itself never appears in a message.
    if (!base64_decode(o.key_b64, &key)) die(kExitUsage, "--key is not valid base64");
    if (key.size() != o.suite->key_len)
      die(kExitUsage, "--key decodes to " + std::to_string(key.size()) + " bytes, " +
                          o.suite->name + " needs " + std::to_string(o.suite->key_len) +
                          " (master key || master salt)");
    srtp_err_status_t st = srtp_init();
    if (st != srtp_err_status_ok) die(kExitSetup, "srtp_init failed, status " + std::to_string(st));
    session = make_session(o, &key);
  }
  int rc = o.mode == "send" ? run_send(o, session) : run_recv(o, session);
  fflush(stdout);
  if (session) {
    srtp_dealloc(session);
    srtp_shutdown();
  }
  return rc;
}
