// SRTP and SRTCP (RFC 3711, RFC 6188, RFC 7714) for the relay's workers.
//
// Why our own framing rather than libsrtp: the relay re-keys a burst of
// packets at a time, and the cipher library (Intel ipsec-mb) is fastest when
// it gets many independent jobs in flight (its multi-buffer HMAC-SHA1 runs 16
// packets per instruction stream on AVX-512). libsrtp protects one packet per
// call through function pointers and keeps about 4 KB per session; it stays
// the reference our tests compare against.
//
// Ownership:
//  - KeySet: derived and expanded session keys for one master key. Built by
//    the control lcore, immutable afterwards, shared by the configs that use
//    it, freed only after a QSBR grace period.
//  - CryptoConfig: which KeySets a flow decrypts and encrypts with; immutable,
//    replaced as a whole (re-INVITE with new keys) and published with a
//    release store.
//  - CryptoState: the per-flow rollover counters and replay windows. Exactly
//    one writer: the flow's owning worker (the same single-writer rule as the
//    flow's other state). A counter of owner changes proves it in tests.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

struct IMB_MGR;

namespace sluice::srtp {

enum class Suite : uint8_t {
  kNone = 0,
  kAesCm128Sha1_80,
  kAesCm128Sha1_32,
  kAes256CmSha1_80,
  kAeadAes128Gcm,
  kAeadAes256Gcm,
};
inline constexpr int kSuiteCount = 6;

struct SuiteInfo {
  const char* sdes_name;  // as in SDP a=crypto (RFC 4568, 6188, 7714)
  const char* name;       // lower case, for the CLI and the bench
  uint8_t key_len;        // master key bytes
  uint8_t salt_len;       // master salt bytes
  uint8_t srtp_tag;       // SRTP authentication tag bytes
  uint8_t srtcp_tag;      // SRTCP tag bytes (80 bits for the _32 suite too)
  bool aead;
};
const SuiteInfo& info(Suite s);
// Accepts either the SDES name or the lower-case name; false if unknown.
bool parse_suite(std::string_view name, Suite* out);

// RFC 3711 4.3.1 key derivation with key_derivation_rate 0: n bytes of the
// AES-CM PRF keyed with the master key, for `label` (0-2 SRTP, 3-5 SRTCP).
// A 12-byte (AEAD) master salt is zero-padded to 14 bytes, as libsrtp does.
void derive(Suite s, const uint8_t* master_key, const uint8_t* master_salt, uint8_t label,
            uint8_t* out, size_t n);

// AES-CM keystream (RFC 3711 4.1.1) for a 16- or 32-byte key and a 16-byte
// initial counter block; used by the KDF and the known-answer tests.
void aes_cm_keystream(const uint8_t* key, size_t key_len, const uint8_t* iv, uint8_t* out,
                      size_t n);

// Session keys of one stream type (SRTP or SRTCP), expanded for ipsec-mb.
struct SessionKeys {
  uint8_t salt[16] = {};  // 14 bytes (AES-CM) or 12 bytes (AEAD) used
  // AES-CM: expanded AES key (16-byte aligned), then HMAC inner and outer
  // hash states. AEAD: an ipsec-mb gcm_key_data in the compact layout of the
  // GCM manager's architecture (see gcm_key_bytes()).
  uint8_t* cipher = nullptr;
  uint8_t* ipad = nullptr;
  uint8_t* opad = nullptr;
};

// SHA-256 over suite, master key and salt (see KeySet::digest()).
void key_digest(Suite s, const uint8_t* key, size_t key_len, const uint8_t* salt, size_t salt_len,
                uint8_t out[32]);

class KeySet {
 public:
  // Derives and expands. rtp/rtcp choose which session keys are built (a flow
  // that only carries RTCP needs no SRTP keys). Returns null for lengths that
  // do not match the suite.
  static std::shared_ptr<KeySet> create(Suite s, const uint8_t* key, size_t key_len,
                                        const uint8_t* salt, size_t salt_len, bool rtp,
                                        bool rtcp, uint64_t id);
  // From session keys directly (known-answer tests): enc key, auth key (20
  // bytes, AES-CM only) and session salt, used for both SRTP and SRTCP.
  static std::shared_ptr<KeySet> from_session(Suite s, const uint8_t* enc, const uint8_t* auth,
                                              const uint8_t* salt, uint64_t id);
  ~KeySet();
  KeySet(const KeySet&) = delete;
  KeySet& operator=(const KeySet&) = delete;

  Suite suite() const { return suite_; }
  uint64_t id() const { return id_; }
  const SessionKeys& rtp() const { return rtp_; }
  const SessionKeys& rtcp() const { return rtcp_; }
  bool has_rtp() const { return rtp_.cipher != nullptr; }
  bool has_rtcp() const { return rtcp_.cipher != nullptr; }
  // SHA-256 of suite, master key and salt: tells an unchanged key in a
  // repeated upsert without keeping the master key around.
  const uint8_t* digest() const { return digest_; }
  size_t memory_bytes() const { return bytes_; }
  static constexpr size_t kHeader = 192;  // sizeof(KeySet) rounded to cache lines

 private:
  KeySet() = default;
  static std::shared_ptr<KeySet> alloc(size_t material);
  bool expand(SessionKeys& sk, const uint8_t* enc, const uint8_t* auth, const uint8_t* salt);
  // Hot first: the session keys a worker reads for every packet.
  SessionKeys rtp_, rtcp_;
  Suite suite_ = Suite::kNone;
  uint64_t id_ = 0;
  uint8_t digest_[32] = {};
  uint8_t* block_ = nullptr;  // expanded keys, right behind this object
  size_t bytes_ = 0;
};

struct CryptoConfig {
  std::shared_ptr<const KeySet> rx;       // verify and decrypt arriving packets
  std::shared_ptr<const KeySet> rx_prev;  // previous rx keys (re-key in flight)
  std::shared_ptr<const KeySet> tx;       // encrypt leaving packets
};

// Replay window of 128 packets (libsrtp's default; RFC 3711 asks for >= 64).
struct RxRtp {
  std::atomic<uint64_t> highest{0};  // 48-bit index: ROC << 16 | SEQ
  uint64_t window[2] = {};           // bit i: index highest - i was accepted
  uint32_t ssrc = 0;
  uint16_t stamp = 0;  // LRU
  uint8_t valid = 0;
};
struct RxRtcp {
  uint64_t window[2] = {};
  uint32_t highest = 0;  // 31-bit SRTCP index
  uint32_t ssrc = 0;
  uint16_t stamp = 0;
  uint8_t valid = 0;
};
struct TxRtp {
  std::atomic<uint64_t> highest{0};
  uint32_t ssrc = 0;
  uint16_t stamp = 0;
  uint8_t valid = 0;
};
struct TxRtcp {
  uint32_t next = 1;  // next SRTCP index to send
  uint32_t ssrc = 0;
  uint16_t stamp = 0;
  uint8_t valid = 0;
};

inline constexpr int kStreams = 2;  // SSRCs tracked per direction

// Hot fields first: a re-keyed RTP packet touches the first two cache lines
// (config, ids, owner, counters, the first rx and tx streams) and little else.
struct alignas(64) CryptoState {
  // Written by the control lcore (release), read by the owning worker.
  std::atomic<const CryptoConfig*> config{nullptr};

  // Owning worker only (but for relaxed reads of counters and highest).
  uint64_t rx_id = 0, tx_id = 0;  // KeySet ids the streams belong to
  std::atomic<uint32_t> owner{UINT32_MAX};  // worker that last used the state
  uint16_t clock = 0;
  std::atomic<uint8_t> prev_live{0};  // try rx_prev until rx authenticates a packet
  std::atomic<uint64_t> decrypted{0}, encrypted{0};
  RxRtp rx_rtp[kStreams];
  TxRtp tx_rtp[kStreams];
  RxRtcp rx_rtcp[kStreams];
  TxRtcp tx_rtcp[kStreams];
  std::atomic<uint32_t> auth_failed{0}, replayed{0}, malformed{0};
  std::atomic<uint32_t> prev_key_used{0};  // packets that authenticated with rx_prev
  std::atomic<uint32_t> owner_changes{0};
  uint64_t prev_id = 0;
  RxRtp prev_rtp;
  RxRtcp prev_rtcp;

  // Control lcore: before the state is (re)published for a new flow.
  void reset();
};

// CryptoStates indexed by flow slot, allocated in chunks on first use so a
// table sized for a million plain flows costs nothing until SRTP arrives.
class CryptoTable {
 public:
  explicit CryptoTable(uint32_t capacity);
  ~CryptoTable();
  CryptoTable(const CryptoTable&) = delete;
  CryptoTable& operator=(const CryptoTable&) = delete;

  // Worker side: the state of a flow that has crypto (its chunk exists).
  CryptoState* get(uint32_t slot) const {
    return chunks_[slot / kChunk].load(std::memory_order_acquire) + slot % kChunk;
  }
  // Control side: allocates the chunk if needed.
  CryptoState& ensure(uint32_t slot);
  uint64_t memory_bytes() const { return chunks_allocated_ * uint64_t(kChunk) * sizeof(CryptoState); }

 private:
  static constexpr uint32_t kChunk = 1024;
  uint32_t nchunks_;
  std::unique_ptr<std::atomic<CryptoState*>[]> chunks_;
  uint32_t chunks_allocated_ = 0;
};

enum class Verdict : uint8_t { kOk, kAuthFailed, kReplay, kMalformed };

// One packet's work: the RTP or RTCP packet (UDP payload) at p, len bytes,
// with room bytes writable from p (tags grow the packet).
struct Op {
  uint8_t* p = nullptr;
  uint32_t len = 0;
  uint32_t room = 0;
  CryptoState* st = nullptr;
  const CryptoConfig* cfg = nullptr;
  bool rtcp = false;
  Verdict verdict = Verdict::kOk;  // out
};

// Per-worker crypto engine (ipsec-mb managers and per-batch scratch).
class Engine {
 public:
  static constexpr int kMaxBatch = 64;
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Verifies and decrypts (cfg->rx), then encrypts (cfg->tx), every op; sets
  // verdict and len. Ops of one flow must be in arrival order. n <= kMaxBatch.
  void run(Op* ops, int n, uint32_t worker);

 private:
  struct Scratch;
  bool prepare_rx(Op& op, Scratch& s, const KeySet& ks, bool prev);
  void commit_rx(Op& op, Scratch& s);
  bool prepare_tx(Op& op, Scratch& s);
  void finish_tx(Op& op, Scratch& s);
  void flush();
  void restore(Op& op, Scratch& s);
  IMB_MGR* cm_;   // best available architecture: AES-CM + HMAC-SHA1
  IMB_MGR* gcm_;  // AVX2 (or SSE): its GCM key layout is 3x smaller than VAES'
  Scratch* scratch_;
};

// Bytes of one expanded GCM key in the layout the engine uses.
size_t gcm_key_bytes();

}  // namespace sluice::srtp
