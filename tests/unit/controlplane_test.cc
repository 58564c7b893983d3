// Control plane pieces without sockets: relay port pools, SDES keys, config
// validation (defaults filled, bad fields named), the journal's file
// format (replay, torn tails, rewrite), and how queued flow batches merge.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/epoll.h>

#include <cstdlib>
#include <ctime>
#include <thread>
#include <fstream>
#include <vector>

#include "controlplane/admission.h"
#include "controlplane/config.h"
#include "controlplane/gateway.h"
#include "controlplane/journal.h"
#include "controlplane/media.h"
#include "controlplane/net/loop.h"
#include "controlplane/net/srv.h"
#include "sluice/controlplane/v1/journal.pb.h"

using namespace sluice::cp;

TEST_CASE("port pool: even RTP ports, RTCP next, freed ports reused last") {
  PortPool p(20000, 20009);  // pairs 20000, 20002, 20004, 20006, 20008
  CHECK(p.free() == 5);
  std::set<uint16_t> got;
  for (int i = 0; i < 5; ++i) got.insert(p.take());
  CHECK(got == std::set<uint16_t>{20000, 20002, 20004, 20006, 20008});
  CHECK(p.take() == 0);  // exhausted
  p.give(20004);
  p.give(20004);  // twice: ignored
  p.give(20005);  // odd: ignored
  p.give(31000);  // outside: ignored
  CHECK(p.free() == 1);
  CHECK(p.take() == 20004);
  PortPool q(20000, 20009);
  CHECK(q.claim(20006));
  CHECK_FALSE(q.claim(20006));
  for (int i = 0; i < 4; ++i) CHECK(q.take() != 20006);
  CHECK(q.take() == 0);
}

TEST_CASE("flow batches merged into one request: each key once, its latest rule") {
  auto rule = [](const char* addr, uint16_t port, uint16_t dst_port, uint64_t call) {
    FlowRule r;
    r.local_addr = addr;
    r.local_port = port;
    r.dst_port = dst_port;
    r.cookie = call;
    return r;
  };
  // Call 1's early-media answer, call 2's answer, call 1's final answer
  // (its PBX side moved to port 7000), then a batch that names one key twice.
  std::vector<FlowRule> early1 = {rule("10.0.0.1", 20000, 6000, 1), rule("10.0.1.1", 20000, 5000, 1)};
  std::vector<FlowRule> call2 = {rule("10.0.0.1", 20002, 6002, 2), rule("10.0.1.1", 20002, 5002, 2)};
  std::vector<FlowRule> final1 = {rule("10.0.0.1", 20000, 7000, 1), rule("10.0.1.1", 20000, 5000, 1)};
  std::vector<FlowRule> twice = {rule("10.0.0.1", 20004, 1, 3), rule("10.0.0.1", 20004, 2, 3)};
  auto merged = merge_upserts({&early1, &call2, &final1, &twice});
  std::vector<std::string> got;
  for (const FlowRule* r : merged)
    got.push_back(r->local_addr + ":" + std::to_string(r->local_port) + ">" + std::to_string(r->dst_port));
  CHECK(got == std::vector<std::string>{"10.0.0.1:20002>6002", "10.0.1.1:20002>5002", "10.0.0.1:20000>7000",
                                        "10.0.1.1:20000>5000", "10.0.0.1:20004>2"});
  // The same port on two relay addresses is two keys; one batch is itself.
  CHECK(merge_upserts({&early1}).size() == 2);
  CHECK(merge_upserts({&early1})[0] == &early1[0]);
  CHECK(merge_upserts({}).empty());
}

TEST_CASE("admission: call limit, call rate, and load shedding on the minimum queueing delay") {
  using V = Admission::Verdict;
  SECTION("max_calls counts the calls held") {
    Admission a({2, 0, 0});
    CHECK(a.admit(0, 0) == V::kAdmit);
    CHECK(a.admit(0, 1) == V::kAdmit);
    CHECK(a.admit(0, 2) == V::kMaxCalls);
    CHECK(a.admit(0, 1) == V::kAdmit);
    Admission unlimited({0, 0, 0});
    CHECK(unlimited.admit(0, Admission::kCallCeiling - 1) == V::kAdmit);
    CHECK(unlimited.admit(0, Admission::kCallCeiling) == V::kMaxCalls);  // the hard ceiling
  }
  SECTION("max_call_rate: one second's burst, then the rate") {
    Admission a({0, 10, 0});
    int admitted = 0;
    for (int i = 0; i < 20; ++i) admitted += a.admit(1000, 0) == V::kAdmit;
    CHECK(admitted == 10);
    CHECK(a.admit(1050, 0) == V::kRate);   // half a token back
    CHECK(a.admit(1100, 0) == V::kAdmit);  // one token back in 100 ms
    CHECK(a.admit(1100, 0) == V::kRate);
    admitted = 0;
    for (int t = 1200; t < 3200; t += 10) admitted += a.admit(t, 0) == V::kAdmit;
    CHECK(admitted >= 19);  // 10/s over 2 s, what is left of the bucket
    CHECK(admitted <= 21);
  }
  SECTION("a burst worked off within an interval does not shed") {
    Admission a({0, 0, 100});
    for (int t = 0; t <= 1000; t += 5) {
      // Every other datagram waited 400 ms; the others 1 ms.
      CHECK(a.observe(t, 0, (t / 5) % 2 ? 400000 : 1000) == 0);
      CHECK(a.admit(t, 0) == V::kAdmit);
    }
    CHECK(a.delay_ms() == 1);
    CHECK_FALSE(a.shedding());
  }
  SECTION("a standing queue sheds after one interval and stops below half the target") {
    Admission a({0, 0, 100});
    int on = -1, off = -1;
    for (int t = 0; t <= 1000; t += 5) {
      int64_t delay_us = t < 500 ? 150000 : 40000;  // a queue of 150 ms, then 40 ms
      int change = a.observe(t, 0, delay_us);
      if (change > 0) on = t;
      if (change < 0) off = t;
      V v = a.admit(t, 0);
      if (t < 100) CHECK(v == V::kAdmit);           // the first interval is still open
      if (t >= 100 && t < 500) CHECK(v == V::kOverload);
      if (t >= 700) CHECK(v == V::kAdmit);
    }
    CHECK(on == 100);
    CHECK(off >= 500);
    CHECK(off <= 600);
    CHECK(a.delay_ms() == 40);
  }
  SECTION("between target/2 and target the state holds (hysteresis)") {
    Admission a({0, 0, 100});
    for (int t = 0; t <= 300; t += 5) a.observe(t, 0, 150000);
    REQUIRE(a.shedding());
    for (int t = 305; t <= 800; t += 5) a.observe(t, 0, 70000);
    CHECK(a.shedding());
    CHECK(a.delay_ms() == 70);
  }
  SECTION("silence ends shedding: an interval without datagrams had no queue") {
    Admission a({0, 0, 100});
    for (int t = 0; t <= 300; t += 5) a.observe(t, 0, 150000);
    REQUIRE(a.shedding());
    a.drained(0);              // the load stops: the socket is read empty
    CHECK(a.tick(350) == 0);   // the interval is not over yet
    CHECK(a.tick(600) == -1);  // the timer's tick, no message needed
    CHECK_FALSE(a.shedding());
    CHECK(a.admit(600, 0) == V::kAdmit);
  }
  SECTION("datagrams held up by a stall, then the socket read empty: no standing queue") {
    Admission a({0, 0, 100});
    for (int t = 0; t <= 1000; t += 20) {
      CHECK(a.observe(t, 0, 300000) == 0);
      a.drained(0);
    }
    CHECK_FALSE(a.shedding());
    // The same delays with the socket never read empty: a standing queue.
    for (int t = 1000; t <= 1200; t += 20) a.observe(t, 0, 300000);
    CHECK(a.shedding());
  }
  SECTION("a stall longer than an interval does not end shedding: the backlog still counts") {
    Admission a({0, 0, 100});
    for (int t = 0; t <= 300; t += 5) a.observe(t, 0, 400000);
    REQUIRE(a.shedding());
    CHECK(a.observe(900, 0, 1000000) == 0);  // 600 ms without running, then the backlog
    CHECK(a.shedding());
  }
  SECTION("the worst socket counts: one queue standing sheds even when another is short") {
    Admission a({0, 0, 100});
    int on = -1;
    for (int t = 0; t <= 300; t += 5) {
      int change = a.observe(t, 1, 200);       // the PBX's responses: no queue
      change += a.observe(t, 0, 300000);       // the phones' INVITEs: 300 ms
      if (change > 0 && on < 0) on = t;
    }
    CHECK(on == 100);
    CHECK(a.delay_ms() == 300);
    CHECK(a.admit(300, 0) == V::kOverload);
  }
  SECTION("queue_delay_ms 0: never sheds") {
    Admission a({0, 0, 0});
    for (int t = 0; t <= 1000; t += 5) CHECK(a.observe(t, 0, 5000000) == 0);
    CHECK(a.admit(1000, 0) == V::kAdmit);
  }
  SECTION("messages without an arrival time (TCP/TLS) leave the signal alone") {
    Admission a({0, 0, 100});
    for (int t = 0; t <= 300; t += 5) a.observe(t, 0, -1);
    CHECK_FALSE(a.shedding());
  }
}

// The overload signal for TCP/TLS: the loop notes when it had nothing to
// do, and only then.
TEST_CASE("event loop: idle is noted when nothing is ready, not while work waits") {
  sluice::net::Loop loop;
  int p[2];
  REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
  int reads = 0;
  int64_t busy_for_us = -1;
  loop.add(p[0], EPOLLIN, [&](uint32_t) {
    char b[16];
    while (read(p[0], b, sizeof b) > 0) {
    }
    ++reads;
    busy_for_us = sluice::net::Loop::now_us() - loop.idle_at_us();
  });
  int idles = 0;
  loop.set_idle_hook([&] { ++idles; });
  loop.run_once(0);  // nothing ready
  const int64_t idle1 = loop.idle_at_us();
  CHECK(idle1 > 0);
  CHECK(reads == 0);
  CHECK(idles == 1);  // the hook: every descriptor read empty

  // Ready at the look that does not wait: the loop is busy, idle stays put,
  // and the handler sees at least the time since (the write came after).
  const int64_t written = sluice::net::Loop::now_us();
  REQUIRE(write(p[1], "x", 1) == 1);
  loop.run_once(0);
  CHECK(reads == 1);
  CHECK(loop.idle_at_us() == idle1);
  CHECK(busy_for_us >= written - idle1);
  CHECK(idles == 1);  // not while work was ready

  loop.run_once(0);  // caught up
  CHECK(loop.idle_at_us() > idle1);
  CHECK(idles == 2);

  // A wait that ends with data: idle until it ended, so after the write.
  int64_t late = 0;
  std::thread writer([&] {
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, nullptr);
    late = sluice::net::Loop::now_us();
    (void)!write(p[1], "y", 1);
  });
  while (reads < 2) loop.run_once(1000);
  writer.join();
  CHECK(loop.idle_at_us() >= late);
  CHECK(busy_for_us >= 0);
  loop.set_idle_hook(nullptr);
  loop.del(p[0]);
  close(p[0]);
  close(p[1]);
}

TEST_CASE("SDES keys: fresh, the suite's size, split back into key and salt") {
  const SuiteInfo* cm = suite_by_name("AES_CM_128_HMAC_SHA1_80");
  const SuiteInfo* gcm = suite_by_name("AEAD_AES_256_GCM");
  REQUIRE(cm);
  REQUIRE(gcm);
  CHECK(suite_by_name("AES_CM_128_NULL_AUTH") == nullptr);
  std::string a = new_inline_key(*cm), b = new_inline_key(*cm);
  CHECK(a != b);
  CHECK(a.size() == 40);  // base64 of 30 bytes
  std::string k, s;
  REQUIRE(split_inline_key(*cm, a, &k, &s));
  CHECK(k.size() == 16);
  CHECK(s.size() == 14);
  REQUIRE(split_inline_key(*gcm, new_inline_key(*gcm), &k, &s));
  CHECK(k.size() == 32);
  CHECK(s.size() == 12);
  CHECK_FALSE(split_inline_key(*gcm, a, &k, &s));      // wrong size for the suite
  CHECK_FALSE(split_inline_key(*cm, "!!notbase64", &k, &s));
  CHECK(suite_by_number(4) == suite_by_name("AEAD_AES_128_GCM"));
}

namespace {
const char kGood[] = R"(
listeners { side: "outside" address: "192.0.2.1" transport: TLS
  tls { certificate_file: "c.pem" private_key_file: "k.pem" } }
listeners { side: "inside" address: "198.51.100.1" }
upstreams { host: "198.51.100.10" }
media { outside { address: "192.0.2.1" } inside { address: "198.51.100.1" } }
)";

std::string error_of(const std::string& text) {
  auto c = parse_config(text, "t.conf");
  return c.ok() ? std::string() : std::string(c.status().message());
}
}  // namespace

TEST_CASE("config: defaults are filled in") {
  auto c = parse_config(kGood, "t.conf");
  REQUIRE(c.ok());
  CHECK(c->listeners(0).port() == 5061);  // TLS default
  CHECK(c->listeners(1).port() == 5060);
  CHECK(c->listeners(1).idle_timeout_s() == 90);
  CHECK(c->listeners(1).dscp() == 24);  // CS3
  CHECK(c->media().audio_dscp() == 46);  // EF
  CHECK(c->media().video_dscp() == 34);  // AF41
  CHECK(c->media().ttl_reset() == 0);    // decrement
  CHECK(c->upstreams(0).port() == 5060);
  CHECK(c->media().port_min() == 20000);
  CHECK(c->media().port_max() == 31000);
  CHECK(c->media().outside().srtp() == sluice::controlplane::v1::OPTIONAL);
  CHECK(c->media().inside().srtp() == sluice::controlplane::v1::OFF);
  CHECK(c->media().outside().suites_size() == 2);
  CHECK(c->timers().t1_ms() == 500);
  CHECK(c->timers().invite_timeout_s() == 180);
  CHECK(c->timers().session_expires_s() == 14400);
  CHECK(c->registrations().mobile_idle_timeout_s() == 1200);
  CHECK(c->security().auth_failures() == 10);
  CHECK(c->overload().queue_delay_ms() == 100);
  CHECK(c->overload().max_calls() == 0);
  CHECK(c->overload().retry_after_s() == 0);
  CHECK(parse_config(kGood + std::string("overload { queue_delay_ms: 0 }"), "t.conf")->overload().queue_delay_ms() == 0);
  CHECK(c->admin_listen() == "unix:/run/sluice/controlplane.sock");
}

TEST_CASE("config: errors name the field") {
  std::string g = kGood;
  CHECK(error_of("listeners { side: \"x\" address: \"1.2.3.4\" }").find("listeners[0].side") != std::string::npos);
  CHECK(error_of(g + "listeners { side: \"inside\" address: \"nope\" }").find("listeners[2].address") != std::string::npos);
  CHECK(error_of(g + "listeners { side: \"outside\" address: \"192.0.2.1\" transport: TLS tls { certificate_file: \"c\" private_key_file: \"k\" } }")
            .find("the same address, port and protocol twice") != std::string::npos);
  // media is a single message: the variants replace the good one.
  std::string base = g.substr(0, g.find("media {"));
  std::string sides = R"(outside { address: "192.0.2.1" } inside { address: "198.51.100.1" })";
  CHECK(error_of(base + "media { port_min: 20001 " + sides + " }").find("media.port_min") != std::string::npos);
  CHECK(error_of(base + "media { max_senders: 11 " + sides + " }").find("media.max_senders") != std::string::npos);
  CHECK(error_of(base + "media { video_dscp: 64 " + sides + " }").find("media.video_dscp") != std::string::npos);
  CHECK(error_of(base + "media { audio_dscp: 99 " + sides + " }").find("media.audio_dscp") != std::string::npos);
  CHECK(error_of(base + "media { ttl_reset: 256 " + sides + " }").find("media.ttl_reset") != std::string::npos);
  CHECK(error_of(g + "listeners { side: \"inside\" address: \"198.51.100.9\" dscp: 64 }").find("listeners[2].dscp") != std::string::npos);
  CHECK(error_of(base + R"(media { outside { address: "192.0.2.1" suites: "ROT13" } inside { address: "198.51.100.1" } })")
            .find("media.outside.suites[0]") != std::string::npos);
  CHECK(error_of(base + R"(media { outside { address: "192.0.2.1" } })").find("media.inside.address") != std::string::npos);
  CHECK(error_of(g + "overload { queue_delay_ms: 10001 }").find("overload.queue_delay_ms") != std::string::npos);
  CHECK(error_of(g + "overload { retry_after_s: 86401 }").find("overload.retry_after_s") != std::string::npos);
  CHECK(error_of(g + "timers { invite_timeout_s: 301 }").find("timers.invite_timeout_s") != std::string::npos);
  CHECK(error_of(g + "upstreams { host: \"198.51.100.11\" transport: TCP }").find("upstreams[1].transport") != std::string::npos);
  CHECK(error_of(g + "listeners { side: \"outside\" address: \"192.0.2.1\" allow: \"10.0.0.0/33\" }").find("allow[0]") != std::string::npos);
  CHECK(error_of("listeners { side: \"outside\" address: \"192.0.2.1\" tls { require_client_certificate: true } transport: TLS }")
            .find("tls.certificate_file") != std::string::npos);
  CHECK(error_of("bogus_field: 1").find("t.conf:1") != std::string::npos);
  CHECK(error_of(R"(listeners { side: "outside" address: "192.0.2.1" })").find("inside") != std::string::npos);
}

namespace {

namespace v1 = ::sluice::controlplane::v1;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sluice-journal-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    unlink((path + "/journal").c_str());
    unlink((path + "/journal.new").c_str());
    rmdir(path.c_str());
  }
};

std::vector<v1::JournalRecord> replay(Journal* j, const std::string& dir) {
  std::vector<v1::JournalRecord> got;
  std::string err;
  REQUIRE(j->open(dir, [&](const v1::JournalRecord& r) { got.push_back(r); }, &err));
  return got;
}

v1::JournalRecord binding(const std::string& token) {
  v1::JournalRecord r;
  r.mutable_binding()->set_token(token);
  r.mutable_binding()->set_aor("sip:" + token + "@example.net");
  return r;
}

}  // namespace

TEST_CASE("journal: records come back in order, the file is private") {
  TempDir d;
  {
    Journal j;
    CHECK(replay(&j, d.path).empty());
    j.append(binding("a"));
    v1::JournalRecord call;
    call.mutable_call()->set_id(7);
    call.mutable_call()->mutable_outside()->set_call_id("c@x");
    j.append(call);
    v1::JournalRecord end;
    end.set_call_ended(7);
    j.append(end);
  }
  struct stat st;
  REQUIRE(stat((d.path + "/journal").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  Journal j;
  auto got = replay(&j, d.path);
  REQUIRE(got.size() == 3);
  CHECK(got[0].binding().token() == "a");
  CHECK(got[1].call().outside().call_id() == "c@x");
  CHECK(got[2].call_ended() == 7);
  CHECK(j.torn() == 0);
}

TEST_CASE("journal: a torn or corrupt tail is cut at the last good record") {
  TempDir d;
  {
    Journal j;
    replay(&j, d.path);
    j.append(binding("a"));
    j.append(binding("b"));
  }
  std::string file = d.path + "/journal";
  std::string good;
  {
    std::ifstream in(file, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  SECTION("half a record (a crash in the middle of a write)") {
    std::string next = Journal::frame(binding("c").SerializeAsString());
    std::ofstream(file, std::ios::binary | std::ios::app) << next.substr(0, next.size() / 2);
  }
  SECTION("a flipped byte in the last record") {
    std::string bad = good;
    bad[bad.size() - 3] ^= 0x40;
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bad;
  }
  SECTION("a length far beyond the file") {
    std::ofstream(file, std::ios::binary | std::ios::app) << std::string("\xff\xff\xff\x7f", 4) + "0000";
  }
  Journal j;
  auto got = replay(&j, d.path);
  REQUIRE(got.size() >= 1);
  CHECK(got[0].binding().token() == "a");
  CHECK(j.torn() > 0);
  // Appending after the cut yields a clean file again.
  j.append(binding("z"));
  Journal again;
  auto after = replay(&again, d.path);
  CHECK(after.back().binding().token() == "z");
  CHECK(again.torn() == 0);
}

namespace {

// What a replay of `dir` leaves live: "b<token>" or "c<id>" -> the record's
// aor or outside call-id, the way the control plane applies it.
std::map<std::string, std::string> live_after_replay(const std::string& dir, Journal* j) {
  std::map<std::string, std::string> live;
  for (const v1::JournalRecord& r : replay(j, dir)) {
    switch (r.record_case()) {
      case v1::JournalRecord::kBinding: live["b" + r.binding().token()] = r.binding().aor(); break;
      case v1::JournalRecord::kBindingRemoved: live.erase("b" + r.binding_removed()); break;
      case v1::JournalRecord::kCall:
        live["c" + std::to_string(r.call().id())] = r.call().outside().call_id();
        break;
      case v1::JournalRecord::kCallEnded: live.erase("c" + std::to_string(r.call_ended())); break;
      case v1::JournalRecord::kSubscription:
        live["s" + std::to_string(r.subscription().id())] = r.subscription().event();
        break;
      case v1::JournalRecord::kSubscriptionEnded:
        live.erase("s" + std::to_string(r.subscription_ended()));
        break;
      default: break;
    }
  }
  return live;
}

v1::JournalRecord subscription(uint64_t id, const std::string& event, int64_t expires_unix_ms) {
  v1::JournalRecord r;
  r.mutable_subscription()->set_id(id);
  r.mutable_subscription()->set_event(event);
  r.mutable_subscription()->set_expires_unix_ms(expires_unix_ms);
  return r;
}

v1::JournalRecord call(uint64_t id, const std::string& call_id) {
  v1::JournalRecord r;
  r.mutable_call()->set_id(id);
  r.mutable_call()->mutable_outside()->set_call_id(call_id);
  return r;
}

}  // namespace

TEST_CASE("journal: compaction keeps the latest record of each live call, binding and subscription") {
  TempDir d;
  Journal j;
  replay(&j, d.path);
  for (int i = 0; i < 100; ++i) j.append(binding("t" + std::to_string(i)));
  for (int i = 0; i < 100; ++i) {
    if (i == 42 || i == 43) continue;
    v1::JournalRecord gone;
    gone.set_binding_removed("t" + std::to_string(i));
    j.append(gone);
  }
  v1::JournalRecord again43 = binding("t43");
  again43.mutable_binding()->set_aor("sip:moved@example.net");
  j.append(again43);
  v1::JournalRecord expired = binding("old");
  expired.mutable_binding()->set_expires_unix_ms(1000);  // 1970: long gone
  j.append(expired);
  j.append(call(7, "seven@x"));
  j.append(call(8, "eight@x"));
  j.append(call(8, "eight-after-reinvite@x"));
  v1::JournalRecord end;
  end.set_call_ended(7);
  j.append(end);
  int64_t later = int64_t{std::time(nullptr)} * 1000 + 600000;
  j.append(subscription(1, "message-summary", later));
  j.append(subscription(1, "message-summary-refreshed", later));
  j.append(subscription(2, "dialog", later));
  j.append(subscription(3, "presence", 1000));  // expired in 1970
  v1::JournalRecord unsub;
  unsub.set_subscription_ended(2);
  j.append(unsub);
  uint64_t before = j.bytes();
  REQUIRE(j.compact(true));
  CHECK(j.compactions() == 1);
  CHECK(j.bytes() < before / 10);
  j.append(binding("t44"));
  Journal after;
  auto live = live_after_replay(d.path, &after);
  CHECK(after.replayed() == 5);  // t42, t43, call 8, subscription 1, then t44
  REQUIRE(live.size() == 5);
  CHECK(live["s1"] == "message-summary-refreshed");
  CHECK(live["bt42"] == "sip:t42@example.net");
  CHECK(live["bt43"] == "sip:moved@example.net");
  CHECK(live["bt44"] == "sip:t44@example.net");
  CHECK(live["c8"] == "eight-after-reinvite@x");
  CHECK_FALSE(after.wants_compaction());
}

TEST_CASE("journal: records appended while a compaction runs are kept") {
  TempDir d;
  Journal j;
  replay(&j, d.path);
  // Enough churn that the compactor is still reading when the appends come.
  for (int i = 0; i < 20000; ++i) j.append(binding("churn" + std::to_string(i % 50)));
  REQUIRE(j.compact(false));
  for (int i = 0; i < 2000; ++i) j.append(binding("late" + std::to_string(i)));
  v1::JournalRecord gone;
  gone.set_binding_removed("churn7");
  j.append(gone);
  REQUIRE(j.compact(true));  // waits for the one under way (and maybe runs one more)
  j.append(binding("last"));
  Journal after;
  auto live = live_after_replay(d.path, &after);
  CHECK(live.size() == 49 + 2000 + 1);
  CHECK(live.count("bchurn7") == 0);
  CHECK(live.count("bchurn8") == 1);
  CHECK(live.count("blate0") == 1);
  CHECK(live.count("blate1999") == 1);
  CHECK(live.count("blast") == 1);
  CHECK(after.torn() == 0);
}

TEST_CASE("journal: a state_dir that cannot be created is a clear error") {
  Journal j;
  std::string err;
  CHECK_FALSE(j.open("/proc/sluice-no/such", [](const v1::JournalRecord&) {}, &err));
  CHECK(err.find("state_dir") != std::string::npos);
}

TEST_CASE("NAPTR: the records RFC 3263 lets a SIP client use, best first") {
  using sluice::net::Naptr;
  auto n = [](uint16_t order, uint16_t pref, const char* flags, const char* service, const char* repl) {
    Naptr r;
    r.order = order;
    r.preference = pref;
    r.flags = flags;
    r.service = service;
    r.replacement = repl;
    return r;
  };
  auto got = sluice::net::usable_naptrs({
      n(20, 10, "s", "SIP+D2U", "_sip._udp.late"),
      n(10, 50, "S", "SIPS+D2T", "_sips._tcp.b"),
      n(10, 5, "s", "SIP+D2T", "_sip._tcp.a"),
      n(1, 1, "s", "SIP+D2S", "_sip._sctp.x"),   // SCTP: not spoken here
      n(1, 1, "u", "SIP+D2U", "!^.*$!sip:x!"),   // a regexp rule, not an SRV name
      n(1, 1, "s", "E2U+sip", "_sip._udp.enum"),  // ENUM, not SIP location
      n(1, 1, "s", "SIP+D2U", "."),               // "." : nothing here
  });
  REQUIRE(got.size() == 3);
  CHECK(got[0].replacement == "_sip._tcp.a");
  CHECK(got[1].replacement == "_sips._tcp.b");
  CHECK(got[2].replacement == "_sip._udp.late");
  CHECK(sluice::net::transport_of_srv_name("_SIPS._tcp.x") == sluice::net::SrvTransport::kTls);
  CHECK(sluice::net::transport_of_srv_name("_sip._tcp.x") == sluice::net::SrvTransport::kTcp);
  CHECK(sluice::net::transport_of_srv_name("_sip._udp.x") == sluice::net::SrvTransport::kUdp);
}
