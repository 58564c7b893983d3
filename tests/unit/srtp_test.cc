// SRTP/SRTCP: RFC known answers, then differential tests against Debian's
// libsrtp2 (an independent implementation) in both directions.
#include <srtp2/srtp.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dataplane/core/net.h"
#include "dataplane/core/srtp.h"
#include "tests/unit/srtp_vectors.h"

using namespace sluice;
using namespace sluice::srtp;
namespace tv = sluice::test_vectors;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes hex(const char* s) {
  Bytes b;
  for (size_t i = 0; s[i] && s[i + 1]; i += 2) b.push_back(uint8_t(std::stoi(std::string(s + i, 2), nullptr, 16)));
  return b;
}

constexpr Suite kAll[] = {Suite::kAesCm128Sha1_80, Suite::kAesCm128Sha1_32,
                          Suite::kAes256CmSha1_80, Suite::kAeadAes128Gcm,
                          Suite::kAeadAes256Gcm};

// A flow's crypto, driven the way the worker drives it.
struct Flow {
  CryptoConfig cfg;
  CryptoState st;
  Engine* eng;
  explicit Flow(Engine* e) : eng(e) { st.reset(); }
  // Runs one packet (in place, with tail room); returns the verdict.
  Verdict run(Bytes& pkt, bool rtcp) {
    size_t len = pkt.size();
    pkt.resize(len + 64);
    Op op;
    op.p = pkt.data();
    op.len = uint32_t(len);
    op.room = uint32_t(pkt.size());
    op.st = &st;
    op.cfg = &cfg;
    op.rtcp = rtcp;
    eng->run(&op, 1, 0);
    pkt.resize(op.verdict == Verdict::kOk ? op.len : len);
    return op.verdict;
  }
};

Bytes rtp(uint16_t seq, uint32_t ssrc, size_t payload, uint8_t fill = 0) {
  Bytes b(12 + payload);
  b[0] = 0x80;
  b[1] = 0;
  net::store16(b.data() + 2, seq);
  net::store32(b.data() + 4, uint32_t(seq) * 160);
  net::store32(b.data() + 8, ssrc);
  for (size_t i = 0; i < payload; ++i) b[12 + i] = uint8_t(fill + seq * 7 + i);
  return b;
}

Bytes rtcp_sr(uint32_t ssrc, uint32_t n) {
  Bytes b(28);
  b[0] = 0x80;
  b[1] = 200;
  net::store16(b.data() + 2, 6);
  net::store32(b.data() + 4, ssrc);
  for (size_t i = 8; i < b.size(); ++i) b[i] = uint8_t(n * 3 + i);
  return b;
}

Bytes master(Suite s, uint8_t seed) {
  const SuiteInfo& in = info(s);
  Bytes k(in.key_len + in.salt_len);
  for (size_t i = 0; i < k.size(); ++i) k[i] = uint8_t(seed * 31 + i * 7 + 1);
  return k;
}

std::shared_ptr<KeySet> keys(Suite s, const Bytes& m, uint64_t id) {
  const SuiteInfo& in = info(s);
  return KeySet::create(s, m.data(), in.key_len, m.data() + in.key_len, in.salt_len, true, true, id);
}

// One libsrtp session for one direction.
struct Lib {
  srtp_t s = nullptr;
  Lib(Suite suite, const Bytes& m, bool inbound) {
    static bool init = (srtp_init(), true);
    (void)init;
    srtp_policy_t p;
    std::memset(&p, 0, sizeof p);
    switch (suite) {
      case Suite::kAesCm128Sha1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);
        break;
      case Suite::kAesCm128Sha1_32:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p.rtcp);  // RFC 4568 6.2
        break;
      case Suite::kAes256CmSha1_80:
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&p.rtp);
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&p.rtcp);
        break;
      case Suite::kAeadAes128Gcm:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp);
        break;
      case Suite::kAeadAes256Gcm:
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p.rtp);
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p.rtcp);
        break;
      default: break;
    }
    p.ssrc.type = inbound ? ssrc_any_inbound : ssrc_any_outbound;
    p.key = const_cast<uint8_t*>(m.data());
    p.window_size = 128;
    REQUIRE(srtp_create(&s, &p) == srtp_err_status_ok);
  }
  ~Lib() { srtp_dealloc(s); }
  void protect(Bytes& b, bool rtcp) {
    int len = int(b.size());
    b.resize(b.size() + SRTP_MAX_TRAILER_LEN + 4);
    auto st = rtcp ? srtp_protect_rtcp(s, b.data(), &len) : srtp_protect(s, b.data(), &len);
    REQUIRE(st == srtp_err_status_ok);
    b.resize(size_t(len));
  }
  srtp_err_status_t unprotect(Bytes& b, bool rtcp) {
    int len = int(b.size());
    auto st = rtcp ? srtp_unprotect_rtcp(s, b.data(), &len) : srtp_unprotect(s, b.data(), &len);
    if (st == srtp_err_status_ok) b.resize(size_t(len));
    return st;
  }
};

}  // namespace

TEST_CASE("RFC 3711 B.2: AES-CM keystream", "[srtp][kat]") {
  Bytes key = hex(tv::rfc3711_b2::session_key);
  Bytes iv = hex(tv::rfc3711_b2::counter_0000);
  Bytes ks(48);
  aes_cm_keystream(key.data(), key.size(), iv.data(), ks.data(), ks.size());
  CHECK(ks == hex(tv::rfc3711_b2::keystream_first_48));

  // The engine's AES-CM path on SSRC 0, ROC 0, SEQ 0 uses the same counter
  // blocks: an all-zero payload encrypts to the keystream.
  Engine eng;
  Bytes salt = hex(tv::rfc3711_b2::session_salt);
  Bytes auth(20, 0x11);
  Flow f(&eng);
  f.cfg.tx = KeySet::from_session(Suite::kAesCm128Sha1_80, key.data(), auth.data(), salt.data(), 1);
  Bytes p(12 + 48, 0);
  p[0] = 0x80;
  REQUIRE(f.run(p, false) == Verdict::kOk);
  REQUIRE(p.size() == 12 + 48 + 10);
  CHECK(Bytes(p.begin() + 12, p.begin() + 60) == hex(tv::rfc3711_b2::keystream_first_48));
}

TEST_CASE("RFC 3711 B.3 and RFC 6188 7.2: key derivation", "[srtp][kat]") {
  Bytes mk = hex(tv::rfc3711_b3::master_key), ms = hex(tv::rfc3711_b3::master_salt);
  uint8_t out[20];
  derive(Suite::kAesCm128Sha1_80, mk.data(), ms.data(), 0, out, 16);
  CHECK(Bytes(out, out + 16) == hex(tv::rfc3711_b3::cipher_key));
  derive(Suite::kAesCm128Sha1_80, mk.data(), ms.data(), 2, out, 14);
  CHECK(Bytes(out, out + 14) == hex(tv::rfc3711_b3::cipher_salt));
  derive(Suite::kAesCm128Sha1_80, mk.data(), ms.data(), 1, out, 20);
  CHECK(Bytes(out, out + 20) == hex(tv::rfc3711_b3::auth_key_160));

  Bytes mk2 = hex(tv::rfc6188_7_2::master_key), ms2 = hex(tv::rfc6188_7_2::master_salt);
  uint8_t k32[32];
  derive(Suite::kAes256CmSha1_80, mk2.data(), ms2.data(), 0, k32, 32);
  CHECK(Bytes(k32, k32 + 32) == hex(tv::rfc6188_7_2::cipher_key));
  derive(Suite::kAes256CmSha1_80, mk2.data(), ms2.data(), 2, out, 14);
  CHECK(Bytes(out, out + 14) == hex(tv::rfc6188_7_2::cipher_salt));
  derive(Suite::kAes256CmSha1_80, mk2.data(), ms2.data(), 1, out, 20);
  CHECK(Bytes(out, out + 20) == hex(tv::rfc6188_7_2::auth_key_160));

  Bytes key = hex(tv::rfc6188_7_1::session_key), iv = hex(tv::rfc6188_7_1::counter_0000);
  Bytes ks(48);
  aes_cm_keystream(key.data(), key.size(), iv.data(), ks.data(), ks.size());
  CHECK(ks == hex(tv::rfc6188_7_1::keystream_first_48));
}

TEST_CASE("RFC 7714 16-17: AEAD SRTP and SRTCP", "[srtp][kat]") {
  Engine eng;
  Bytes salt = hex(tv::rfc7714::salt);
  struct Case {
    Suite suite;
    const char* key;
    const char* srtp;
    const char* srtcp;
    const char* srtcp_clear;
  } cases[] = {
      {Suite::kAeadAes128Gcm, tv::rfc7714::key_128, tv::rfc7714_16_1::protected_packet,
       tv::rfc7714_17_1::protected_packet, tv::rfc7714_17_3::protected_packet},
      {Suite::kAeadAes256Gcm, tv::rfc7714::key_256, tv::rfc7714_16_2::protected_packet,
       tv::rfc7714_17_2::protected_packet, tv::rfc7714_17_4::protected_packet},
  };
  for (const Case& c : cases) {
    CAPTURE(info(c.suite).name);
    Bytes key = hex(c.key);
    auto ks = KeySet::from_session(c.suite, key.data(), nullptr, salt.data(), 7);
    // Protect.
    Flow tx(&eng);
    tx.cfg.tx = ks;
    Bytes p = hex(tv::rfc7714::rtp_packet);
    REQUIRE(tx.run(p, false) == Verdict::kOk);
    CHECK(p == hex(c.srtp));
    // SRTCP with the index the RFC uses.
    tx.st.tx_id = ks->id();
    tx.st.tx_rtcp[0].ssrc = tv::rfc7714::rtcp_ssrc;
    tx.st.tx_rtcp[0].valid = 1;
    tx.st.tx_rtcp[0].next = tv::rfc7714::srtcp_index;
    Bytes r = hex(tv::rfc7714::rtcp_packet);
    REQUIRE(tx.run(r, true) == Verdict::kOk);
    CHECK(r == hex(c.srtcp));
    // Unprotect, including the unencrypted (E = 0) SRTCP form.
    Flow rx(&eng);
    rx.cfg.rx = ks;
    Bytes q = hex(c.srtp);
    REQUIRE(rx.run(q, false) == Verdict::kOk);
    CHECK(q == hex(tv::rfc7714::rtp_packet));
    Bytes s = hex(c.srtcp);
    REQUIRE(rx.run(s, true) == Verdict::kOk);
    CHECK(s == hex(tv::rfc7714::rtcp_packet));
    Flow rx2(&eng);
    rx2.cfg.rx = ks;
    Bytes u = hex(c.srtcp_clear);
    REQUIRE(rx2.run(u, true) == Verdict::kOk);
    CHECK(u == hex(tv::rfc7714::rtcp_packet));
    // One flipped bit anywhere fails.
    Bytes t = hex(c.srtp);
    t[20] ^= 1;
    CHECK(rx2.run(t, false) == Verdict::kAuthFailed);
  }
}

TEST_CASE("GCM keys are kept in the compact layout", "[srtp]") {
  // Whatever the manager's architecture, the expanded key stops well short
  // of ipsec-mb's full 1008-byte gcm_key_data (VAES keeps 48 hash powers).
  CHECK(gcm_key_bytes() >= 240 + 128);
  CHECK(gcm_key_bytes() <= 512);
}

TEST_CASE("differential: libsrtp protects, we unprotect", "[srtp][diff]") {
  Engine eng;
  for (Suite s : kAll) {
    for (size_t size : {20, 80, 160, 1200}) {
      CAPTURE(info(s).name, size);
      Bytes m = master(s, uint8_t(size));
      Lib sender(s, m, false);
      Flow relay(&eng);
      relay.cfg.rx = keys(s, m, 1);
      // Across the sequence wrap, then a new SSRC mid-call.
      int ok = 0;
      for (int i = 0; i < 40; ++i) {
        uint32_t ssrc = i < 25 ? 0xcafe0001 : 0xcafe0002;
        uint16_t seq = uint16_t(i < 25 ? 65520 + i : 1000 + i);
        Bytes plain = rtp(seq, ssrc, size);
        Bytes wire = plain;
        sender.protect(wire, false);
        REQUIRE(relay.run(wire, false) == Verdict::kOk);
        CHECK(wire == plain);
        ok++;
        if (i % 10 == 3) {
          Bytes r = rtcp_sr(ssrc, uint32_t(i));
          Bytes rw = r;
          sender.protect(rw, true);
          REQUIRE(relay.run(rw, true) == Verdict::kOk);
          CHECK(rw == r);
        }
      }
      CHECK(ok == 40);
      // ROC 1 for the first SSRC after the wrap.
      int k = relay.st.rx_rtp[0].ssrc == 0xcafe0001 ? 0 : 1;
      CHECK((relay.st.rx_rtp[k].highest.load() >> 16) == 1);
    }
  }
}

TEST_CASE("differential: we protect, libsrtp unprotects", "[srtp][diff]") {
  Engine eng;
  for (Suite s : kAll) {
    for (size_t size : {20, 80, 160, 1200}) {
      CAPTURE(info(s).name, size);
      Bytes m = master(s, uint8_t(size + 1));
      Lib receiver(s, m, true);
      Flow relay(&eng);
      relay.cfg.tx = keys(s, m, 2);
      for (int i = 0; i < 40; ++i) {
        uint32_t ssrc = i < 25 ? 0xbeef0001 : 0xbeef0002;
        uint16_t seq = uint16_t(i < 25 ? 65520 + i : 30000 + i);
        Bytes plain = rtp(seq, ssrc, size);
        Bytes wire = plain;
        REQUIRE(relay.run(wire, false) == Verdict::kOk);
        CHECK(wire.size() == plain.size() + info(s).srtp_tag);
        REQUIRE(receiver.unprotect(wire, false) == srtp_err_status_ok);
        CHECK(wire == plain);
        if (i % 10 == 3) {
          Bytes r = rtcp_sr(ssrc, uint32_t(i));
          Bytes rw = r;
          REQUIRE(relay.run(rw, true) == Verdict::kOk);
          REQUIRE(receiver.unprotect(rw, true) == srtp_err_status_ok);
          CHECK(rw == r);
        }
      }
    }
  }
}

TEST_CASE("re-key between suites: libsrtp A -> relay -> libsrtp B", "[srtp][diff]") {
  Engine eng;
  for (Suite a : kAll) {
    for (Suite b : {Suite::kAesCm128Sha1_80, Suite::kAeadAes128Gcm}) {
      CAPTURE(info(a).name, info(b).name);
      Bytes ma = master(a, 3), mb = master(b, 4);
      Lib sender(a, ma, false), receiver(b, mb, true);
      Flow relay(&eng);
      relay.cfg.rx = keys(a, ma, 10);
      relay.cfg.tx = keys(b, mb, 11);
      for (int i = 0; i < 30; ++i) {
        Bytes plain = rtp(uint16_t(65530 + i), 0x1234, 160);
        Bytes wire = plain;
        sender.protect(wire, false);
        REQUIRE(relay.run(wire, false) == Verdict::kOk);
        REQUIRE(receiver.unprotect(wire, false) == srtp_err_status_ok);
        CHECK(wire == plain);
      }
      Bytes r = rtcp_sr(0x1234, 1), rw = r;
      sender.protect(rw, true);
      REQUIRE(relay.run(rw, true) == Verdict::kOk);
      REQUIRE(receiver.unprotect(rw, true) == srtp_err_status_ok);
      CHECK(rw == r);
    }
  }
}

TEST_CASE("replay, reordering and loss across the wrap", "[srtp]") {
  Engine eng;
  Suite s = Suite::kAesCm128Sha1_80;
  Bytes m = master(s, 9);
  Lib sender(s, m, false);
  Flow relay(&eng);
  relay.cfg.rx = keys(s, m, 1);
  std::vector<Bytes> wire;
  for (int i = 0; i < 60; ++i) {
    Bytes p = rtp(uint16_t(65500 + i), 0x42, 40);
    sender.protect(p, false);
    wire.push_back(p);
  }
  // 0..33 in order (seq 65500..65533), then skip to after the wrap, then
  // late packets from before the wrap, then a gap (loss).
  std::vector<int> order;
  for (int i = 0; i < 34; ++i) order.push_back(i);
  for (int i = 40; i < 45; ++i) order.push_back(i);  // seq 4..8, ROC 1
  for (int i = 34; i < 40; ++i) order.push_back(i);  // late: ROC 0
  for (int i = 50; i < 60; ++i) order.push_back(i);  // 45..49 lost
  for (int i : order) {
    Bytes p = wire[size_t(i)];
    CAPTURE(i);
    REQUIRE(relay.run(p, false) == Verdict::kOk);
  }
  // Every one of them again is a replay; an old one too.
  for (int i : {0, 20, 35, 41, 59}) {
    Bytes p = wire[size_t(i)];
    CHECK(relay.run(p, false) == Verdict::kReplay);
  }
  // A packet from the lost range still arrives late: accepted once.
  Bytes late = wire[47];
  CHECK(relay.run(late, false) == Verdict::kOk);
  late = wire[47];
  CHECK(relay.run(late, false) == Verdict::kReplay);
  CHECK(relay.st.replayed.load() == 6);
  CHECK(relay.st.decrypted.load() == order.size() + 1);

  // Tampering anywhere in header, payload or tag fails authentication.
  for (size_t pos : {size_t(1), size_t(12), size_t(30), wire[0].size() - 1}) {
    Bytes p = rtp(uint16_t(100 + pos), 0x42, 40);
    sender.protect(p, false);
    p[pos] ^= 0x20;
    CHECK(relay.run(p, false) == Verdict::kAuthFailed);
  }
  CHECK(relay.st.auth_failed.load() == 4);
}

TEST_CASE("libsrtp rejects our replays too (SRTCP index, ROC on the wire)", "[srtp][diff]") {
  Engine eng;
  for (Suite s : kAll) {
    CAPTURE(info(s).name);
    Bytes m = master(s, 5);
    Lib receiver(s, m, true);
    Flow relay(&eng);
    relay.cfg.tx = keys(s, m, 5);
    Bytes r = rtcp_sr(7, 1);
    REQUIRE(relay.run(r, true) == Verdict::kOk);
    Bytes again = r;
    REQUIRE(receiver.unprotect(r, true) == srtp_err_status_ok);
    CHECK(receiver.unprotect(again, true) == srtp_err_status_replay_fail);
  }
}

TEST_CASE("keys replaced on a live flow: old-key packets in flight still pass", "[srtp]") {
  Engine eng;
  Suite s = Suite::kAeadAes128Gcm;
  Bytes m1 = master(s, 1), m2 = master(s, 2);
  Lib old_sender(s, m1, false), new_sender(s, m2, false);
  auto k1 = keys(s, m1, 1), k2 = keys(s, m2, 2);
  Flow relay(&eng);
  relay.cfg.rx = k1;
  for (int i = 0; i < 5; ++i) {
    Bytes p = rtp(uint16_t(10 + i), 9, 20);
    old_sender.protect(p, false);
    REQUIRE(relay.run(p, false) == Verdict::kOk);
  }
  // Two packets protected with the old key are still in flight when the
  // control plane installs the new key.
  Bytes in_flight[2] = {rtp(15, 9, 20), rtp(16, 9, 20)};
  for (auto& p : in_flight) old_sender.protect(p, false);
  CryptoConfig next;
  next.rx = k2;
  next.rx_prev = k1;
  relay.cfg = next;
  for (auto& p : in_flight) CHECK(relay.run(p, false) == Verdict::kOk);
  CHECK(relay.st.prev_key_used.load() == 2);
  // The sender switches; after its first packet the old key is done.
  Bytes n1 = rtp(17, 9, 20);
  new_sender.protect(n1, false);
  CHECK(relay.run(n1, false) == Verdict::kOk);
  Bytes stale = rtp(18, 9, 20);
  old_sender.protect(stale, false);
  CHECK(relay.run(stale, false) == Verdict::kAuthFailed);
  // A replay of an in-flight old-key packet is still a replay.
  CHECK(relay.st.auth_failed.load() == 1);
}

TEST_CASE("malformed and hostile input is counted, never read out of bounds", "[srtp]") {
  Engine eng;
  std::mt19937 rng(7);
  for (Suite s : kAll) {
    Bytes m = master(s, 6);
    Flow relay(&eng);
    relay.cfg.rx = keys(s, m, 1);
    relay.cfg.tx = keys(s, m, 2);
    for (int i = 0; i < 3000; ++i) {
      size_t n = rng() % 80;
      Bytes p(n);
      for (auto& b : p) b = uint8_t(rng());
      if (n && rng() % 2) p[0] = uint8_t(0x80 | (p[0] & 0x3f));  // version 2
      Verdict v = relay.run(p, rng() % 2);
      CHECK(v != Verdict::kOk);
    }
    CHECK(relay.st.decrypted.load() == 0);
    // Header-only and empty-payload packets work both ways.
    Lib sender(s, m, false);
    Flow rx(&eng);
    rx.cfg.rx = keys(s, m, 3);
    Bytes p = rtp(5, 77, 0), plain = p;
    sender.protect(p, false);
    CHECK(rx.run(p, false) == Verdict::kOk);
    CHECK(p == plain);
  }
}

TEST_CASE("a burst mixing flows, suites and directions", "[srtp]") {
  // The worker hands the engine whole bursts: many flows' jobs in flight in
  // both managers at once must each land on their own packet.
  Engine eng;
  constexpr int kFlows = 6;
  std::vector<std::unique_ptr<Flow>> flows;
  std::vector<std::unique_ptr<Lib>> senders, receivers;
  for (int f = 0; f < kFlows; ++f) {
    Suite a = kAll[f % 5], b = kAll[(f + 2) % 5];
    Bytes ma = master(a, uint8_t(20 + f)), mb = master(b, uint8_t(40 + f));
    flows.push_back(std::make_unique<Flow>(&eng));
    flows.back()->cfg.rx = keys(a, ma, uint64_t(100 + 2 * f));
    flows.back()->cfg.tx = keys(b, mb, uint64_t(101 + 2 * f));
    senders.push_back(std::make_unique<Lib>(a, ma, false));
    receivers.push_back(std::make_unique<Lib>(b, mb, true));
  }
  for (int round = 0; round < 5; ++round) {
    std::vector<Bytes> bufs, plains;
    std::vector<int> owner;
    for (int i = 0; i < Engine::kMaxBatch; ++i) {
      int f = i % kFlows;
      Bytes plain = rtp(uint16_t(round * 64 + i), uint32_t(f), size_t(20 + 37 * (i % 5)));
      Bytes w = plain;
      senders[size_t(f)]->protect(w, false);
      w.resize(w.size() + 64);
      bufs.push_back(w);
      plains.push_back(plain);
      owner.push_back(f);
    }
    std::vector<Op> ops(bufs.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      Flow& fl = *flows[size_t(owner[i])];
      ops[i].p = bufs[i].data();
      ops[i].len = uint32_t(bufs[i].size() - 64);
      ops[i].room = uint32_t(bufs[i].size());
      ops[i].st = &fl.st;
      ops[i].cfg = &fl.cfg;
    }
    eng.run(ops.data(), int(ops.size()), 0);
    for (size_t i = 0; i < ops.size(); ++i) {
      REQUIRE(ops[i].verdict == Verdict::kOk);
      bufs[i].resize(ops[i].len);
      REQUIRE(receivers[size_t(owner[i])]->unprotect(bufs[i], false) == srtp_err_status_ok);
      CHECK(bufs[i] == plains[i]);
    }
  }
}

TEST_CASE("a third SSRC cannot evict two live streams", "[srtp]") {
  // Evicting a live stream would reset its replay window and ROC; so a new
  // SSRC only takes a slot idle for 64 packets of the flow.
  Engine eng;
  Suite s = Suite::kAesCm128Sha1_80;
  Bytes m = master(s, 11);
  Lib sender(s, m, false);
  Flow relay(&eng);
  relay.cfg.rx = keys(s, m, 1);
  auto send = [&](uint32_t ssrc, uint16_t seq) {
    Bytes p = rtp(seq, ssrc, 20);
    sender.protect(p, false);
    return relay.run(p, false);
  };
  uint16_t seq = 100;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(send(0xa, seq) == Verdict::kOk);
    REQUIRE(send(0xb, seq) == Verdict::kOk);
    ++seq;
  }
  CHECK(send(0xc, 1) == Verdict::kReplay);  // both slots live: refused
  for (int i = 0; i < 70; ++i) REQUIRE(send(0xa, seq++) == Verdict::kOk);
  CHECK(send(0xc, 2) == Verdict::kOk);  // 0xb went quiet: its slot is taken
  CHECK(send(0xa, seq++) == Verdict::kOk);
}
