// RFC 3261 section 17 transaction timers on a fake clock: every
// retransmission instant and timeout is checked against the RFC's schedule
// with T1 = 500 ms, T2 = 4 s, T4 = 5 s.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "controlplane/sip/message.h"
#include "controlplane/sip/transaction.h"

using namespace sluice::sip;

namespace {

struct Wire : Sender {
  struct Sent {
    int64_t at;
    Peer to;
    Message msg;
  };
  const Clock* clock;
  std::vector<Sent> sent;
  bool fail = false;
  explicit Wire(const Clock* c) : clock(c) {}
  bool send(const Peer& to, const std::string& bytes) override {
    if (fail) return false;
    Message m;
    size_t used = 0;
    REQUIRE(parse(bytes, false, &m, &used) == Error::kNone);
    sent.push_back({clock->now_ms(), to, m});
    return true;
  }
  std::vector<int64_t> times(const std::string& what) const {  // method or status
    std::vector<int64_t> out;
    for (const auto& s : sent)
      if ((s.msg.request && s.msg.method == what) ||
          (!s.msg.request && std::to_string(s.msg.status) == what))
        out.push_back(s.at);
    return out;
  }
};

struct User : Transactions::Handler {
  std::vector<std::pair<uint64_t, Message>> requests;
  std::vector<Message> acks;
  std::vector<uint64_t> cancels, ack_timeouts;
  void on_request(uint64_t stx, const Message& req, const Peer&) override {
    requests.emplace_back(stx, req);
  }
  void on_ack(const Message& ack, const Peer&) override { acks.push_back(ack); }
  void on_cancel(uint64_t stx, const Message&) override { cancels.push_back(stx); }
  void on_ack_timeout(uint64_t stx) override { ack_timeouts.push_back(stx); }
};

Message msg(const std::string& text) {
  Message m;
  size_t used = 0;
  REQUIRE(parse(text, false, &m, &used) == Error::kNone);
  return m;
}

std::string request_text(const std::string& method, const std::string& branch, int cseq,
                         const std::string& cseq_method = "") {
  return method + " sip:bob@198.51.100.10 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=" + branch + "\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:alice@example.com>;tag=a1\r\n"
         "To: <sip:bob@example.com>\r\n"
         "Call-ID: c1@192.0.2.10\r\n"
         "CSeq: " + std::to_string(cseq) + " " + (cseq_method.empty() ? method : cseq_method) +
         "\r\nContent-Length: 0\r\n\r\n";
}

Message response_to(const Message& req, int code, const std::string& to_tag = "b1") {
  return make_response(req, code, "X", to_tag);
}

struct Fixture {
  FakeClock clock;
  Timers timers{&clock};
  Wire wire{&clock};
  User user;
  Transactions tx{&timers, &wire, &user};
  Peer udp{Transport::kUdp, 0xC000020A, 5060, 0, 0};
  Peer tcp{Transport::kTcp, 0xC000020A, 5060, 7, 0};
  int64_t t0 = clock.now_ms();
  void run(int64_t ms) { advance(&clock, &timers, ms); }
  std::vector<int64_t> rel(const std::vector<int64_t>& v) const {
    std::vector<int64_t> out;
    for (int64_t t : v) out.push_back(t - t0);
    return out;
  }
};

}  // namespace

TEST_CASE("client INVITE over UDP: Timer A doubles, Timer B fires at 64*T1") {
  Fixture f;
  std::vector<int> got;
  std::vector<bool> local;
  f.tx.request(msg(request_text("INVITE", new_branch(), 1)), f.udp,
               [&](const Message& r, bool l) { got.push_back(r.status); local.push_back(l); });
  f.run(40000);
  CHECK(f.rel(f.wire.times("INVITE")) ==
        std::vector<int64_t>{0, 500, 1500, 3500, 7500, 15500, 31500});
  REQUIRE(got == std::vector<int>{408});
  CHECK(local[0]);
  CHECK(f.tx.size() == 0);
  CHECK(f.tx.counters().timeouts == 1);
}

TEST_CASE("client non-INVITE over UDP: Timer E caps at T2, Timer F at 64*T1") {
  Fixture f;
  std::vector<int> got;
  f.tx.request(msg(request_text("OPTIONS", new_branch(), 1)), f.udp,
               [&](const Message& r, bool) { got.push_back(r.status); });
  f.run(40000);
  CHECK(f.rel(f.wire.times("OPTIONS")) ==
        std::vector<int64_t>{0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500});
  CHECK(got == std::vector<int>{408});
}

TEST_CASE("client non-INVITE: a provisional moves E to T2; the final ends after Timer K") {
  Fixture f;
  std::vector<int> got;
  Message req = msg(request_text("REGISTER", new_branch(), 1));
  f.tx.request(req, f.udp, [&](const Message& r, bool) { got.push_back(r.status); });
  f.run(600);  // one retransmission at 500
  Message sent = f.wire.sent.back().msg;
  f.tx.receive(response_to(sent, 100), f.udp);
  f.run(10000);
  // After the 100 at 600: Timer E was armed at 1500 (interval 1000); from
  // then every T2.
  CHECK(f.rel(f.wire.times("REGISTER")) == std::vector<int64_t>{0, 500, 1500, 5500, 9500});
  f.tx.receive(response_to(sent, 200), f.udp);
  f.tx.receive(response_to(sent, 200), f.udp);  // retransmitted final: absorbed
  CHECK(got == std::vector<int>{100, 200});
  CHECK(f.tx.size() == 1);  // Completed until Timer K
  f.run(5000);
  CHECK(f.tx.size() == 0);
}

TEST_CASE("client INVITE: abandoned while silent (failover), never after a provisional") {
  Fixture f;
  std::vector<int> got;
  uint64_t id = f.tx.request(msg(request_text("INVITE", new_branch(), 1)), f.udp,
                             [&](const Message& r, bool) { got.push_back(r.status); });
  f.run(2000);  // A at 0, 0.5, 1.5
  CHECK(f.tx.abandon(id));
  CHECK(f.tx.size() == 0);
  f.run(40000);  // no more retransmissions, no 408 to the TU
  CHECK(f.wire.times("INVITE").size() == 3);
  CHECK(got.empty());
  CHECK_FALSE(f.tx.abandon(id));
  // With a provisional the server owns the call: only CANCEL may end it.
  uint64_t id2 = f.tx.request(msg(request_text("INVITE", new_branch(), 2)), f.udp,
                              [&](const Message& r, bool) { got.push_back(r.status); });
  f.tx.receive(response_to(f.wire.sent.back().msg, 100), f.udp);
  CHECK_FALSE(f.tx.abandon(id2));
  CHECK(f.tx.size() == 1);
}

TEST_CASE("client INVITE: 180 stops Timer A; a 486 is ACKed with the INVITE's branch") {
  Fixture f;
  std::vector<int> got;
  std::string branch = new_branch();
  f.tx.request(msg(request_text("INVITE", branch, 5)), f.udp,
               [&](const Message& r, bool) { got.push_back(r.status); });
  Message inv = f.wire.sent.back().msg;
  f.run(100);
  f.tx.receive(response_to(inv, 180), f.udp);
  f.run(10000);
  CHECK(f.wire.times("INVITE").size() == 1);
  f.tx.receive(response_to(inv, 486), f.udp);
  REQUIRE(f.wire.times("ACK").size() == 1);
  const Message& ack = f.wire.sent.back().msg;
  CHECK(ack.top_branch == branch);
  CHECK(ack.cseq == 5);
  CHECK(ack.to_tag == "b1");
  CHECK(ack.uri == inv.uri);
  f.tx.receive(response_to(inv, 486), f.udp);  // retransmitted: ACK again, TU not told
  CHECK(f.wire.times("ACK").size() == 2);
  CHECK(got == std::vector<int>{180, 486});
  f.run(32000);  // Timer D
  CHECK(f.tx.size() == 0);
}

TEST_CASE("client INVITE: every 2xx reaches the TU until Timer M") {
  Fixture f;
  int n200 = 0;
  f.tx.request(msg(request_text("INVITE", new_branch(), 1)), f.udp,
               [&](const Message& r, bool) { n200 += r.status == 200; });
  Message inv = f.wire.sent.back().msg;
  f.tx.receive(response_to(inv, 200), f.udp);
  f.run(2000);
  f.tx.receive(response_to(inv, 200), f.udp);
  CHECK(n200 == 2);
  CHECK(f.wire.times("ACK").empty());  // a 2xx ACK is the TU's
  CHECK(f.wire.times("INVITE").size() == 1);
  f.run(32000);
  CHECK(f.tx.size() == 0);
}

TEST_CASE("client over TCP: no retransmission, Timer B still fires") {
  Fixture f;
  std::vector<int> got;
  f.tx.request(msg(request_text("INVITE", new_branch(), 1)), f.tcp,
               [&](const Message& r, bool) { got.push_back(r.status); });
  f.run(31999);
  CHECK(got.empty());
  f.run(1);
  CHECK(got == std::vector<int>{408});
  CHECK(f.wire.times("INVITE").size() == 1);
}

TEST_CASE("client: a transport error is a local 503, reported from the timer queue") {
  Fixture f;
  f.wire.fail = true;
  std::vector<int> got;
  f.tx.request(msg(request_text("OPTIONS", new_branch(), 1)), f.tcp,
               [&](const Message& r, bool l) { if (l) got.push_back(r.status); });
  CHECK(got.empty());
  f.run(0);
  CHECK(got == std::vector<int>{503});
  CHECK(f.tx.counters().transport_errors == 1);
}

TEST_CASE("client CANCEL waits for a provisional and reuses the INVITE's branch") {
  Fixture f;
  std::string branch = new_branch();
  uint64_t id = f.tx.request(msg(request_text("INVITE", branch, 9)), f.udp,
                             [](const Message&, bool) {});
  Message inv = f.wire.sent.back().msg;
  CHECK(f.tx.cancel(id));
  CHECK(f.wire.times("CANCEL").empty());
  f.tx.receive(response_to(inv, 100), f.udp);  // 100 alone does not release it
  CHECK(f.wire.times("CANCEL").empty());
  f.tx.receive(response_to(inv, 180), f.udp);
  REQUIRE(f.wire.times("CANCEL").size() == 1);
  const Message& c = f.wire.sent.back().msg;
  CHECK(c.top_branch == branch);
  CHECK(c.cseq == 9);
  CHECK(c.to_tag.empty());
  f.tx.receive(response_to(inv, 487), f.udp);
  CHECK(f.wire.times("ACK").size() == 1);
  CHECK_FALSE(f.tx.cancel(id));
}

TEST_CASE("server INVITE: 100 at once, retransmissions absorbed, non-2xx resent until ACK") {
  Fixture f;
  Message inv = msg(request_text("INVITE", "z9hG4bKinv1", 1));
  f.tx.receive(inv, f.udp);
  REQUIRE(f.user.requests.size() == 1);
  CHECK(f.wire.times("100").size() == 1);
  f.tx.receive(inv, f.udp);  // retransmission: last response resent, TU not told
  CHECK(f.user.requests.size() == 1);
  CHECK(f.wire.times("100").size() == 2);
  uint64_t stx = f.user.requests[0].first;
  f.tx.respond(stx, response_to(inv, 486));
  f.run(4000);
  // Timer G: 500, 1000, 2000, then T2.
  CHECK(f.rel(f.wire.times("486")) == std::vector<int64_t>{0, 500, 1500, 3500});
  Message ack = msg(request_text("ACK", "z9hG4bKinv1", 1));
  ack.set("To", "<sip:bob@example.com>;tag=b1");
  f.tx.receive(ack, f.udp);
  f.run(20000);
  CHECK(f.wire.times("486").size() == 4);
  CHECK(f.user.acks.empty());  // a non-2xx ACK stays in the layer
  CHECK(f.tx.size() == 0);     // Timer I (T4) ended it
}

TEST_CASE("server INVITE: a final response without ACK ends at Timer H") {
  Fixture f;
  Message inv = msg(request_text("INVITE", "z9hG4bKinv2", 1));
  f.tx.receive(inv, f.udp);
  f.tx.respond(f.user.requests[0].first, response_to(inv, 404));
  f.run(31999);
  CHECK(f.tx.size() == 1);
  f.run(1);
  CHECK(f.tx.size() == 0);
  // 0, .5, 1.5, 3.5, 7.5, 11.5, ... 31.5: 11 sends.
  CHECK(f.wire.times("404").size() == 11);
}

TEST_CASE("server INVITE: a 2xx is resent until the end-to-end ACK, which goes to the TU") {
  Fixture f;
  Message inv = msg(request_text("INVITE", "z9hG4bKinv3", 4));
  f.tx.receive(inv, f.udp);
  f.tx.respond(f.user.requests[0].first, response_to(inv, 200));
  f.run(1600);
  CHECK(f.rel(f.wire.times("200")) == std::vector<int64_t>{0, 500, 1500});
  Message ack = msg(request_text("ACK", "z9hG4bKdifferent", 4));
  f.tx.receive(ack, f.udp);
  CHECK(f.user.acks.size() == 1);
  f.run(10000);
  CHECK(f.wire.times("200").size() == 3);
  CHECK(f.user.ack_timeouts.empty());
}

TEST_CASE("server INVITE: no ACK for a 2xx within 64*T1 is reported") {
  Fixture f;
  Message inv = msg(request_text("INVITE", "z9hG4bKinv4", 1));
  f.tx.receive(inv, f.tcp);
  uint64_t stx = f.user.requests[0].first;
  f.tx.respond(stx, response_to(inv, 200));
  f.run(40000);
  CHECK(f.wire.times("200").size() == 1);  // reliable: not resent
  CHECK(f.user.ack_timeouts == std::vector<uint64_t>{stx});
  CHECK(f.tx.size() == 0);
}

TEST_CASE("server: CANCEL is answered 200 by the layer and reported against the INVITE") {
  Fixture f;
  Message inv = msg(request_text("INVITE", "z9hG4bKinv5", 2));
  f.tx.receive(inv, f.udp);
  uint64_t stx = f.user.requests[0].first;
  f.tx.receive(msg(request_text("CANCEL", "z9hG4bKinv5", 2)), f.udp);
  CHECK(f.user.cancels == std::vector<uint64_t>{stx});
  CHECK(f.user.requests.size() == 1);
  REQUIRE(f.wire.times("200").size() == 1);
  CHECK(f.wire.sent.back().msg.cseq_method == "CANCEL");
  // A CANCEL that matches nothing is a new request for the TU (481 is its).
  f.tx.receive(msg(request_text("CANCEL", "z9hG4bKnothing", 2)), f.udp);
  CHECK(f.user.requests.size() == 2);
}

TEST_CASE("server non-INVITE: retransmissions get the last response until Timer J") {
  Fixture f;
  Message reg = msg(request_text("REGISTER", "z9hG4bKreg1", 1));
  f.tx.receive(reg, f.udp);
  f.tx.receive(reg, f.udp);  // before any answer: absorbed silently
  CHECK(f.wire.sent.empty());
  f.tx.respond(f.user.requests[0].first, response_to(reg, 200));
  f.tx.receive(reg, f.udp);
  CHECK(f.wire.times("200").size() == 2);
  CHECK(f.user.requests.size() == 1);
  f.run(32000);
  CHECK(f.tx.size() == 0);
  f.tx.receive(reg, f.udp);  // after Timer J it is new again
  CHECK(f.user.requests.size() == 2);
}

TEST_CASE("server: pre-RFC 3261 requests (no magic cookie) still match their transaction") {
  Fixture f;
  Message inv = msg(request_text("INVITE", "old-branch", 3));
  f.tx.receive(inv, f.udp);
  f.tx.receive(inv, f.udp);
  CHECK(f.user.requests.size() == 1);
}

TEST_CASE("helpers: sent-by, uri_of, set_param, parse_uri") {
  CHECK(via_sent_by("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx;rport") == "192.0.2.1:5060");
  CHECK(via_sent_by("SIP/2.0/TCP  Host.Example ;branch=z") == "host.example");
  CHECK(uri_of("\"Bob <x>\" <sip:bob@h;transport=tcp>;tag=1") == "sip:bob@h;transport=tcp");
  CHECK(uri_of("sip:bob@h;tag=1") == "sip:bob@h");
  CHECK(set_param("<sip:a@h;x=1>;tag=1", "tag", "2") == "<sip:a@h;x=1>;tag=2");
  CHECK(set_param("<sip:a@h>", "expires", "60") == "<sip:a@h>;expires=60");
  Uri u;
  REQUIRE(parse_uri("sips:alice:pw@[2001:db8::1]:5061;transport=tls?x=y", &u));
  CHECK(u.scheme == "sips");
  CHECK(u.user == "alice");
  CHECK(u.host == "2001:db8::1");
  CHECK(u.port == 5061);
  CHECK(u.params == ";transport=tls");
  CHECK_FALSE(parse_uri("sip:a@h:99999", &u));
  CHECK_FALSE(parse_uri("nocolon", &u));
}
