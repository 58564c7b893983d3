#include "dataplane/core/srtp.h"

#include <intel-ipsec-mb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "dataplane/core/net.h"

namespace sluice::srtp {

using net::load16;
using net::load32;
using net::store32;

namespace {

const SuiteInfo kInfo[kSuiteCount] = {
    {"NONE", "none", 0, 0, 0, 0, false},
    {"AES_CM_128_HMAC_SHA1_80", "aes_cm_128_hmac_sha1_80", 16, 14, 10, 10, false},
    {"AES_CM_128_HMAC_SHA1_32", "aes_cm_128_hmac_sha1_32", 16, 14, 4, 10, false},
    {"AES_256_CM_HMAC_SHA1_80", "aes_256_cm_hmac_sha1_80", 32, 14, 10, 10, false},
    {"AEAD_AES_128_GCM", "aead_aes_128_gcm", 16, 12, 16, 16, true},
    {"AEAD_AES_256_GCM", "aead_aes_256_gcm", 32, 12, 16, 16, true},
};

constexpr uint32_t kRtpFixed = 12;
constexpr uint32_t kRtcpFixed = 8;
constexpr uint32_t kHmacOut = 12;  // ipsec-mb truncates HMAC-SHA1 to 12 or 20 bytes
constexpr size_t kAesKeySched = 240;  // 15 round keys: enough for AES-256
// AES-CM session material: the key schedule (176 or 240 bytes), then the
// HMAC inner and outer states: 4 cache lines for AES-128, 5 for AES-256.
size_t cm_sched_bytes(size_t key_len) { return key_len == 32 ? 240 : 176; }
size_t cm_session_bytes(size_t key_len) { return cm_sched_bytes(key_len) + 32 + 32; }

IMB_MGR* new_best_mgr() {
  IMB_MGR* m = alloc_mb_mgr(0);
  if (!m) throw std::bad_alloc();
  IMB_ARCH arch;
  init_mb_mgr_auto(m, &arch);
  return m;
}

// GCM runs on the AVX2 (or SSE) manager: its precomputed hash keys take 128
// (256) bytes where the VAES code keeps 768; the cost is measured in bench/.
IMB_MGR* new_gcm_mgr() {
  IMB_MGR* m = alloc_mb_mgr(0);
  if (!m) throw std::bad_alloc();
  if (m->features & IMB_FEATURE_AVX2)
    init_mb_mgr_avx2(m);
  else
    init_mb_mgr_sse(m);
  return m;
}

// Control-side managers for key expansion (one per thread that builds keys).
IMB_MGR* keyexp_mgr() {
  thread_local std::unique_ptr<IMB_MGR, void (*)(IMB_MGR*)> m(new_best_mgr(), free_mb_mgr);
  return m.get();
}
IMB_MGR* keyexp_gcm_mgr() {
  thread_local std::unique_ptr<IMB_MGR, void (*)(IMB_MGR*)> m(new_gcm_mgr(), free_mb_mgr);
  return m.get();
}

void gcm_pre(const uint8_t* key, size_t key_len, gcm_key_data* out) {
  IMB_MGR* m = keyexp_gcm_mgr();
  if (key_len == 32)
    IMB_AES256_GCM_PRE(m, key, out);
  else
    IMB_AES128_GCM_PRE(m, key, out);
}

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// RFC 3711 3.3.1: fixed header, CSRC list and header extension are sent in
// the clear. Returns their length, or 0 when the packet is too short.
uint32_t rtp_header_len(const uint8_t* p, uint32_t len) {
  if (len < kRtpFixed || (p[0] >> 6) != 2) return 0;
  uint32_t h = kRtpFixed + 4u * (p[0] & 0x0f);
  if (p[0] & 0x10) {
    if (len < h + 4) return 0;
    h += 4 + 4u * load16(p + h + 2);
  }
  return h <= len ? h : 0;
}

// RFC 3711 3.3.1 / appendix A: the index (ROC || SEQ) a packet most likely
// has, given the highest index seen so far.
uint64_t estimate(uint64_t highest, uint16_t seq) {
  uint32_t roc = uint32_t(highest >> 16);
  uint16_t s_l = uint16_t(highest);
  uint32_t v = roc;
  if (s_l < 32768) {
    if (int(seq) - int(s_l) > 32768 && roc > 0) v = roc - 1;
  } else if (int(s_l) - 32768 > int(seq)) {
    v = roc + 1;
  }
  return uint64_t(v) << 16 | seq;
}

// 128-packet window: bit i of (w[1]:w[0]) stands for index highest - i.
bool seen(const uint64_t* w, uint64_t highest, uint64_t index) {
  if (index > highest) return false;
  uint64_t d = highest - index;
  if (d >= 128) return true;  // too old to tell: treated as a replay
  return (w[d >> 6] >> (d & 63)) & 1;
}

void mark(uint64_t* w, uint64_t* highest, uint64_t index) {
  if (index > *highest) {
    uint64_t sh = index - *highest;
    if (sh >= 128) {
      w[0] = w[1] = 0;
    } else if (sh >= 64) {
      w[1] = w[0] << (sh - 64);
      w[0] = 0;
    } else {
      w[1] = (w[1] << sh) | (w[0] >> (64 - sh));
      w[0] <<= sh;
    }
    w[0] |= 1;
    *highest = index;
  } else {
    uint64_t d = highest[0] - index;
    w[d >> 6] |= uint64_t(1) << (d & 63);
  }
}

// The stream slot for ssrc, or -1.
template <class S>
int find(const S* s, int n, uint32_t ssrc) {
  for (int i = 0; i < n; ++i)
    if (s[i].valid && s[i].ssrc == ssrc) return i;
  return -1;
}

// A slot for a new SSRC: a free one, else the least recently used, but only
// once it has been idle for kEvictAge packets of this flow. A live stream is
// never evicted by a burst of other SSRCs (say, captured old packets replayed
// under the same key), which would reset its window and rollover counter.
constexpr uint16_t kEvictAge = 64;
template <class S>
int victim(const S* s, int n, uint16_t clock) {
  int best = -1;
  uint16_t best_age = 0;
  for (int i = 0; i < n; ++i) {
    if (!s[i].valid) return i;
    uint16_t age = uint16_t(clock - s[i].stamp);
    if (age >= kEvictAge && age >= best_age) {
      best_age = age;
      best = i;
    }
  }
  return best;
}

// The outgoing side follows whatever SSRCs its (authenticated or trusted)
// input carries: plain least recently used.
template <class S>
int lru(const S* s, int n, uint16_t clock) {
  int best = 0;
  uint16_t best_age = 0;
  for (int i = 0; i < n; ++i) {
    if (!s[i].valid) return i;
    uint16_t age = uint16_t(clock - s[i].stamp);
    if (age >= best_age) {
      best_age = age;
      best = i;
    }
  }
  return best;
}

void reset_stream(RxRtp& s) {
  s.highest.store(0, std::memory_order_relaxed);
  s.window[0] = s.window[1] = 0;
  s.ssrc = 0;
  s.stamp = 0;
  s.valid = 0;
}
void reset_stream(RxRtcp& s) { s = RxRtcp{}; }
void reset_stream(TxRtp& s) {
  s.highest.store(0, std::memory_order_relaxed);
  s.ssrc = 0;
  s.stamp = 0;
  s.valid = 0;
}
void reset_stream(TxRtcp& s) { s = TxRtcp{}; }

void copy_stream(RxRtp& to, const RxRtp& from) {
  to.highest.store(from.highest.load(std::memory_order_relaxed), std::memory_order_relaxed);
  to.window[0] = from.window[0];
  to.window[1] = from.window[1];
  to.ssrc = from.ssrc;
  to.stamp = from.stamp;
  to.valid = from.valid;
}

template <class T, class V>
void bump(std::atomic<T>& a, V v) {
  a.store(T(a.load(std::memory_order_relaxed) + v), std::memory_order_relaxed);
}

void xor_be32(uint8_t* p, uint32_t v) {
  p[0] ^= uint8_t(v >> 24);
  p[1] ^= uint8_t(v >> 16);
  p[2] ^= uint8_t(v >> 8);
  p[3] ^= uint8_t(v);
}

// AES-CM IV (RFC 3711 4.1.1): salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16.
void cm_iv(uint8_t* iv, const uint8_t* salt, uint32_t ssrc, uint64_t index) {
  std::memcpy(iv, salt, 14);
  iv[14] = iv[15] = 0;
  xor_be32(iv + 4, ssrc);
  for (int i = 0; i < 6; ++i) iv[8 + i] ^= uint8_t(index >> (40 - 8 * i));
}

// AEAD IV (RFC 7714 8.1 and 9.1): 0x0000 || SSRC || ROC || SEQ for SRTP and
// 0x0000 || SSRC || 0x0000 || index for SRTCP, XOR the 12-byte salt. Both
// reduce to SSRC at bytes 2-5 and a 48-bit value at bytes 6-11.
void gcm_iv(uint8_t* iv, const uint8_t* salt, uint32_t ssrc, uint64_t v48) {
  std::memcpy(iv, salt, 12);
  xor_be32(iv + 2, ssrc);
  for (int i = 0; i < 6; ++i) iv[6 + i] ^= uint8_t(v48 >> (40 - 8 * i));
}

}  // namespace

const SuiteInfo& info(Suite s) {
  int i = int(s);
  return kInfo[i < kSuiteCount ? i : 0];
}

bool parse_suite(std::string_view name, Suite* out) {
  for (int i = 0; i < kSuiteCount; ++i) {
    if (name == kInfo[i].sdes_name || name == kInfo[i].name) {
      *out = Suite(i);
      return true;
    }
  }
  return false;
}

void aes_cm_keystream(const uint8_t* key, size_t key_len, const uint8_t* iv, uint8_t* out,
                      size_t n) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  if (!c) throw std::bad_alloc();
  std::memset(out, 0, n);
  int ol = 0;
  bool ok = EVP_EncryptInit_ex(c, key_len == 32 ? EVP_aes_256_ctr() : EVP_aes_128_ctr(), nullptr,
                               key, iv) == 1 &&
            EVP_EncryptUpdate(c, out, &ol, out, int(n)) == 1;
  EVP_CIPHER_CTX_free(c);
  if (!ok) throw std::runtime_error("AES-CM keystream failed");
}

void derive(Suite s, const uint8_t* master_key, const uint8_t* master_salt, uint8_t label,
            uint8_t* out, size_t n) {
  const SuiteInfo& in = info(s);
  // x = key_id XOR master_salt, key_id = label || index DIV kdr (0), right
  // aligned in the 112-bit salt: the label lands on byte 7. IV = x * 2^16.
  uint8_t iv[16] = {};
  std::memcpy(iv, master_salt, in.salt_len);
  iv[7] ^= label;
  aes_cm_keystream(master_key, in.key_len, iv, out, n);
}

size_t gcm_key_bytes() {
  // The bytes of gcm_key_data the GCM manager's architecture writes, found
  // once by precomputing into buffers filled with two different patterns.
  static const size_t bytes = [] {
    alignas(64) static uint8_t a[sizeof(gcm_key_data)], b[sizeof(gcm_key_data)];
    const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    std::memset(a, 0x00, sizeof a);
    std::memset(b, 0xff, sizeof b);
    gcm_pre(key, 16, reinterpret_cast<gcm_key_data*>(a));
    gcm_pre(key, 16, reinterpret_cast<gcm_key_data*>(b));
    size_t last = 0;
    for (size_t i = 0; i < sizeof a; ++i)
      if (a[i] != 0x00 || b[i] != 0xff) last = i + 1;
    return round_up(last, 64);
  }();
  return bytes;
}

// --- KeySet -----------------------------------------------------------------

void key_digest(Suite s, const uint8_t* key, size_t key_len, const uint8_t* salt, size_t salt_len,
                uint8_t out[32]) {
  uint8_t buf[1 + 32 + 14] = {};
  buf[0] = uint8_t(s);
  key_len = std::min<size_t>(key_len, 32);
  salt_len = std::min<size_t>(salt_len, 14);
  std::memcpy(buf + 1, key, key_len);
  std::memcpy(buf + 1 + key_len, salt, salt_len);
  unsigned dl = 0;
  bool ok = EVP_Digest(buf, 1 + key_len + salt_len, out, &dl, EVP_sha256(), nullptr) == 1;
  OPENSSL_cleanse(buf, sizeof buf);
  if (!ok) throw std::runtime_error("SHA-256 failed");
}

KeySet::~KeySet() {
  // The key material lives in this object's own allocation (see alloc()).
  if (block_) OPENSSL_cleanse(block_, bytes_ - kHeader);
  OPENSSL_cleanse(&rtp_, sizeof rtp_);
  OPENSSL_cleanse(&rtcp_, sizeof rtcp_);
}

static_assert(sizeof(KeySet) <= KeySet::kHeader, "KeySet::kHeader must cover the object");

// One allocation: this object, then the expanded keys right behind it, so a
// worker reaches both with one pointer (and prefetches them together).
std::shared_ptr<KeySet> KeySet::alloc(size_t material) {
  size_t total = kHeader + material;
  void* mem = std::aligned_alloc(64, total);
  if (!mem) throw std::bad_alloc();
  std::memset(mem, 0, total);
  KeySet* k = new (mem) KeySet();
  k->block_ = static_cast<uint8_t*>(mem) + kHeader;
  k->bytes_ = total;
  return std::shared_ptr<KeySet>(k, [](KeySet* p) {
    p->~KeySet();
    std::free(p);
  });
}

bool KeySet::expand(SessionKeys& sk, const uint8_t* enc, const uint8_t* auth,
                    const uint8_t* salt) {
  const SuiteInfo& in = info(suite_);
  std::memcpy(sk.salt, salt, in.aead ? 12 : 14);
  if (in.aead) {
    alignas(64) uint8_t full[sizeof(gcm_key_data)];
    gcm_pre(enc, in.key_len, reinterpret_cast<gcm_key_data*>(full));
    std::memcpy(sk.cipher, full, gcm_key_bytes());
    OPENSSL_cleanse(full, sizeof full);
    return true;
  }
  IMB_MGR* m = keyexp_mgr();
  alignas(16) uint8_t dec[kAesKeySched];
  if (in.key_len == 32)
    IMB_AES_KEYEXP_256(m, enc, sk.cipher, dec);
  else
    IMB_AES_KEYEXP_128(m, enc, sk.cipher, dec);
  OPENSSL_cleanse(dec, sizeof dec);
  sk.ipad = sk.cipher + cm_sched_bytes(in.key_len);
  sk.opad = sk.ipad + 32;
  // HMAC (RFC 2104) with a 20-byte key: hash the padded key blocks once.
  uint8_t block[64];
  std::memset(block, 0x36, sizeof block);
  for (int i = 0; i < 20; ++i) block[i] ^= auth[i];
  IMB_SHA1_ONE_BLOCK(m, block, sk.ipad);
  std::memset(block, 0x5c, sizeof block);
  for (int i = 0; i < 20; ++i) block[i] ^= auth[i];
  IMB_SHA1_ONE_BLOCK(m, block, sk.opad);
  OPENSSL_cleanse(block, sizeof block);
  return true;
}

std::shared_ptr<KeySet> KeySet::create(Suite s, const uint8_t* key, size_t key_len,
                                       const uint8_t* salt, size_t salt_len, bool rtp,
                                       bool rtcp, uint64_t id) {
  const SuiteInfo& in = info(s);
  if (s == Suite::kNone || key_len != in.key_len || salt_len != in.salt_len || !(rtp || rtcp))
    return nullptr;
  size_t per = round_up(in.aead ? gcm_key_bytes() : cm_session_bytes(in.key_len), 64);
  std::shared_ptr<KeySet> ks = alloc(per * ((rtp ? 1 : 0) + (rtcp ? 1 : 0)));
  ks->suite_ = s;
  ks->id_ = id;
  key_digest(s, key, key_len, salt, salt_len, ks->digest_);
  uint8_t* next = ks->block_;
  uint8_t enc[32], auth[20], ssalt[14];
  for (int stream = 0; stream < 2; ++stream) {
    if (stream == 0 ? !rtp : !rtcp) continue;
    SessionKeys& sk = stream == 0 ? ks->rtp_ : ks->rtcp_;
    uint8_t base = stream == 0 ? 0 : 3;  // labels 0-2 SRTP, 3-5 SRTCP
    derive(s, key, salt, base, enc, in.key_len);
    if (!in.aead) derive(s, key, salt, uint8_t(base + 1), auth, sizeof auth);
    derive(s, key, salt, uint8_t(base + 2), ssalt, in.aead ? 12 : 14);
    sk.cipher = next;
    next += per;
    ks->expand(sk, enc, auth, ssalt);
  }
  OPENSSL_cleanse(enc, sizeof enc);
  OPENSSL_cleanse(auth, sizeof auth);
  OPENSSL_cleanse(ssalt, sizeof ssalt);
  return ks;
}

std::shared_ptr<KeySet> KeySet::from_session(Suite s, const uint8_t* enc, const uint8_t* auth,
                                             const uint8_t* salt, uint64_t id) {
  const SuiteInfo& in = info(s);
  if (s == Suite::kNone) return nullptr;
  size_t per = round_up(in.aead ? gcm_key_bytes() : cm_session_bytes(in.key_len), 64);
  std::shared_ptr<KeySet> ks = alloc(per * 2);
  ks->suite_ = s;
  ks->id_ = id;
  ks->rtp_.cipher = ks->block_;
  ks->rtcp_.cipher = ks->block_ + per;
  ks->expand(ks->rtp_, enc, auth, salt);
  ks->expand(ks->rtcp_, enc, auth, salt);
  return ks;
}

// --- CryptoState / CryptoTable ----------------------------------------------

void CryptoState::reset() {
  config.store(nullptr, std::memory_order_relaxed);
  rx_id = prev_id = tx_id = 0;
  prev_live.store(0, std::memory_order_relaxed);
  clock = 0;
  for (auto& s : rx_rtp) reset_stream(s);
  reset_stream(prev_rtp);
  for (auto& s : rx_rtcp) reset_stream(s);
  reset_stream(prev_rtcp);
  for (auto& s : tx_rtp) reset_stream(s);
  for (auto& s : tx_rtcp) reset_stream(s);
  decrypted.store(0, std::memory_order_relaxed);
  encrypted.store(0, std::memory_order_relaxed);
  auth_failed.store(0, std::memory_order_relaxed);
  replayed.store(0, std::memory_order_relaxed);
  malformed.store(0, std::memory_order_relaxed);
  prev_key_used.store(0, std::memory_order_relaxed);
  owner.store(UINT32_MAX, std::memory_order_relaxed);
  owner_changes.store(0, std::memory_order_relaxed);
}

CryptoTable::CryptoTable(uint32_t capacity)
    : nchunks_((capacity + kChunk - 1) / kChunk),
      chunks_(new std::atomic<CryptoState*>[nchunks_ ? nchunks_ : 1]) {
  for (uint32_t i = 0; i < nchunks_; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
}

CryptoTable::~CryptoTable() {
  for (uint32_t i = 0; i < nchunks_; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

CryptoState& CryptoTable::ensure(uint32_t slot) {
  std::atomic<CryptoState*>& c = chunks_[slot / kChunk];
  CryptoState* p = c.load(std::memory_order_relaxed);
  if (!p) {
    p = new CryptoState[kChunk];
    ++chunks_allocated_;
    // Release: the constructed states are visible before the chunk is.
    c.store(p, std::memory_order_release);
  }
  return p[slot % kChunk];
}

// --- Engine -----------------------------------------------------------------

namespace {
struct JobFlags {
  bool pending = false;  // in flight
  bool ok = false;       // completed without error
};
}  // namespace

struct alignas(64) Engine::Scratch {
  alignas(16) uint8_t iv[16];
  alignas(16) uint8_t tag[32];  // tag computed by the job
  uint8_t saved[16];            // tag received with the packet
  uint8_t aad[12];              // SRTCP AEAD: header || E|index
  uint64_t index = 0;           // SRTP 48-bit index or SRTCP 31-bit index
  uint32_t hdr = 0;             // bytes in the clear at the front
  uint32_t n = 0;               // end of the encrypted part
  uint32_t ssrc = 0;
  uint32_t word = 0;            // SRTCP E|index
  const KeySet* ks = nullptr;
  const SessionKeys* sk = nullptr;
  JobFlags job;
  bool prev = false;
  bool retry = false;
  uint8_t tag_len = 0;
};

Engine::Engine() : cm_(new_best_mgr()), gcm_(new_gcm_mgr()), scratch_(new Scratch[kMaxBatch]) {
  (void)gcm_key_bytes();  // decide the layout before any worker needs it
}

Engine::~Engine() {
  free_mb_mgr(cm_);
  free_mb_mgr(gcm_);
  delete[] scratch_;
}

namespace {

inline void complete(IMB_JOB* j) {
  auto* f = static_cast<JobFlags*>(j->user_data);
  f->pending = false;
  f->ok = j->status == IMB_STATUS_COMPLETED;
}

struct JobSpec {
  const uint8_t* key;
  uint32_t key_len;
  uint8_t* p;
  uint32_t start, plen;   // cipher range
  uint32_t hash_len;      // AES-CM: authenticated bytes from p
  const uint8_t* iv;
  const void* aad;        // AEAD
  uint32_t aad_len;
  uint8_t* tag;
  const uint8_t* ipad;
  const uint8_t* opad;
};

}  // namespace

void Engine::flush() {
  IMB_JOB* j;
  while ((j = IMB_FLUSH_JOB(cm_))) complete(j);
  while ((j = IMB_FLUSH_JOB(gcm_))) complete(j);
}

namespace {

void submit_job(IMB_MGR* m, IMB_JOB* j, JobFlags* flags) {
  j->user_data = flags;
  flags->pending = true;
  flags->ok = false;
  IMB_JOB* done = IMB_SUBMIT_JOB(m);
  while (done) {
    complete(done);
    done = IMB_GET_COMPLETED_JOB(m);
  }
}

void cm_job(IMB_MGR* m, const JobSpec& js, bool encrypt, JobFlags* flags) {
  IMB_JOB* j = IMB_GET_NEXT_JOB(m);
  j->cipher_mode = js.plen ? IMB_CIPHER_CNTR : IMB_CIPHER_NULL;
  j->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
  j->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
  j->enc_keys = js.key;
  j->dec_keys = js.key;
  j->key_len_in_bytes = js.key_len;
  j->src = js.p;
  j->dst = js.p + js.start;  // ipsec-mb writes at dst, not dst + offset
  j->cipher_start_src_offset_in_bytes = js.start;
  j->msg_len_to_cipher_in_bytes = js.plen;
  j->iv = js.iv;
  j->iv_len_in_bytes = 16;
  if (js.ipad) {
    j->hash_alg = IMB_AUTH_HMAC_SHA_1;
    j->hash_start_src_offset_in_bytes = 0;
    j->msg_len_to_hash_in_bytes = js.hash_len;
    j->u.HMAC._hashed_auth_key_xor_ipad = js.ipad;
    j->u.HMAC._hashed_auth_key_xor_opad = js.opad;
    j->auth_tag_output = js.tag;
    j->auth_tag_output_len_in_bytes = kHmacOut;
  } else {
    j->hash_alg = IMB_AUTH_NULL;
    j->auth_tag_output = nullptr;
    j->auth_tag_output_len_in_bytes = 0;
  }
  submit_job(m, j, flags);
}

void gcm_job(IMB_MGR* m, const JobSpec& js, bool encrypt, JobFlags* flags) {
  IMB_JOB* j = IMB_GET_NEXT_JOB(m);
  j->cipher_mode = IMB_CIPHER_GCM;
  j->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
  j->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
  j->enc_keys = js.key;
  j->dec_keys = js.key;
  j->key_len_in_bytes = js.key_len;
  j->src = js.p;
  j->dst = js.p + js.start;
  j->cipher_start_src_offset_in_bytes = js.start;
  j->msg_len_to_cipher_in_bytes = js.plen;
  j->hash_alg = IMB_AUTH_AES_GMAC;
  j->hash_start_src_offset_in_bytes = js.start;
  j->msg_len_to_hash_in_bytes = js.plen;
  j->iv = js.iv;
  j->iv_len_in_bytes = 12;
  j->u.GCM.aad = js.aad;
  j->u.GCM.aad_len_in_bytes = js.aad_len;
  j->u.GCM.ctx = nullptr;
  j->auth_tag_output = js.tag;
  j->auth_tag_output_len_in_bytes = 16;
  submit_job(m, j, flags);
}

}  // namespace

bool Engine::prepare_rx(Op& op, Scratch& s, const KeySet& ks, bool prev) {
  const SuiteInfo& in = info(ks.suite());
  const SessionKeys& sk = op.rtcp ? ks.rtcp() : ks.rtp();
  CryptoState& st = *op.st;
  uint8_t* p = op.p;
  s.ks = &ks;
  s.sk = &sk;
  s.prev = prev;
  s.retry = false;
  if (!sk.cipher) {
    op.verdict = Verdict::kMalformed;  // no session keys for this stream type
    return false;
  }
  JobSpec js{};
  js.key = sk.cipher;
  js.key_len = in.key_len;
  js.p = p;
  js.iv = s.iv;
  js.tag = s.tag;
  if (!op.rtcp) {
    uint32_t hdr = rtp_header_len(p, op.len);
    s.tag_len = in.srtp_tag;
    if (!hdr || op.len < hdr + s.tag_len) {
      op.verdict = Verdict::kMalformed;
      return false;
    }
    s.hdr = hdr;
    s.n = op.len - s.tag_len;
    s.ssrc = load32(p + 8);
    uint16_t seq = load16(p + 2);
    RxRtp* streams = prev ? &st.prev_rtp : st.rx_rtp;
    int ns = prev ? 1 : kStreams;
    int i = find(streams, ns, s.ssrc);
    if (i >= 0) {
      uint64_t hi = streams[i].highest.load(std::memory_order_relaxed);
      s.index = estimate(hi, seq);
      if (seen(streams[i].window, hi, s.index)) {
        op.verdict = Verdict::kReplay;
        return false;
      }
    } else {
      s.index = seq;  // a new stream starts with ROC 0
    }
    js.start = hdr;
    js.plen = s.n - hdr;
    std::memcpy(s.saved, p + s.n, s.tag_len);
    if (in.aead) {
      gcm_iv(s.iv, sk.salt, s.ssrc, s.index);
      js.aad = p;
      js.aad_len = hdr;
      gcm_job(gcm_, js, false, &s.job);
    } else {
      cm_iv(s.iv, sk.salt, s.ssrc, s.index);
      // The authenticated data is the packet followed by the ROC: borrow the
      // tag's bytes for it (the tag is saved above; it is at least 4 bytes).
      store32(p + s.n, uint32_t(s.index >> 16));
      js.hash_len = s.n + 4;
      js.ipad = sk.ipad;
      js.opad = sk.opad;
      cm_job(cm_, js, false, &s.job);
    }
    return true;
  }
  // SRTCP (RFC 3711 3.4; RFC 7714 9): the E|index word follows the encrypted
  // part (AES-CM) or the tag (AEAD).
  s.tag_len = in.srtcp_tag;
  if (op.len < kRtcpFixed + 4 + s.tag_len || (p[0] >> 6) != 2) {
    op.verdict = Verdict::kMalformed;
    return false;
  }
  uint32_t word_at, tag_at;
  if (in.aead) {
    word_at = op.len - 4;
    tag_at = word_at - s.tag_len;
    s.n = tag_at;
  } else {
    tag_at = op.len - s.tag_len;
    word_at = tag_at - 4;
    s.n = word_at;
  }
  s.word = load32(p + word_at);
  s.hdr = kRtcpFixed;
  s.ssrc = load32(p + 4);
  s.index = s.word & 0x7fffffff;
  bool e = s.word >> 31;
  RxRtcp* streams = prev ? &st.prev_rtcp : st.rx_rtcp;
  int i = find(streams, prev ? 1 : kStreams, s.ssrc);
  if (i >= 0 && seen(streams[i].window, streams[i].highest, s.index)) {
    op.verdict = Verdict::kReplay;
    return false;
  }
  std::memcpy(s.saved, p + tag_at, s.tag_len);
  if (in.aead) {
    gcm_iv(s.iv, sk.salt, s.ssrc, s.index);
    if (e) {
      std::memcpy(s.aad, p, kRtcpFixed);
      store32(s.aad + kRtcpFixed, s.word);
      js.aad = s.aad;
      js.aad_len = sizeof s.aad;
      js.start = kRtcpFixed;
      js.plen = s.n - kRtcpFixed;
    } else {
      // Unencrypted SRTCP: the whole packet and the word are AAD; move the
      // word next to the packet (over the saved tag) to make it contiguous.
      store32(p + s.n, s.word);
      js.aad = p;
      js.aad_len = s.n + 4;
      js.start = s.n;
      js.plen = 0;
    }
    gcm_job(gcm_, js, false, &s.job);
  } else {
    cm_iv(s.iv, sk.salt, s.ssrc, s.index);
    js.start = kRtcpFixed;
    js.plen = e ? s.n - kRtcpFixed : 0;
    js.hash_len = tag_at;
    js.ipad = sk.ipad;
    js.opad = sk.opad;
    cm_job(cm_, js, false, &s.job);
  }
  return true;
}

// Undoes an in-place decryption that failed authentication (AES-CM and GCM
// are counter modes: the same keystream restores the ciphertext), so the
// packet can be tried with the previous key.
void Engine::restore(Op& op, Scratch& s) {
  const SuiteInfo& in = info(s.ks->suite());
  uint8_t* p = op.p;
  JobSpec js{};
  js.key = s.sk->cipher;
  js.key_len = in.key_len;
  js.p = p;
  js.iv = s.iv;
  js.tag = s.tag;  // ignored
  if (!op.rtcp) {
    js.start = s.hdr;
    js.plen = s.n - s.hdr;
    if (in.aead) {
      js.aad = p;
      js.aad_len = s.hdr;
      gcm_job(gcm_, js, true, &s.job);
    } else {
      cm_job(cm_, js, true, &s.job);
    }
    flush();
    std::memcpy(p + s.n, s.saved, s.tag_len);
    return;
  }
  bool e = s.word >> 31;
  uint32_t tag_at = in.aead ? s.n : op.len - s.tag_len;
  if (e) {
    js.start = kRtcpFixed;
    js.plen = s.n - kRtcpFixed;
    if (in.aead) {
      js.aad = s.aad;
      js.aad_len = sizeof s.aad;
      gcm_job(gcm_, js, true, &s.job);
    } else {
      cm_job(cm_, js, true, &s.job);
    }
    flush();
  }
  std::memcpy(p + tag_at, s.saved, s.tag_len);
}

namespace {

uint64_t highest_of(const RxRtp& s) { return s.highest.load(std::memory_order_relaxed); }
uint64_t highest_of(const RxRtcp& s) { return s.highest; }
void set_highest(RxRtp& s, uint64_t v) { s.highest.store(v, std::memory_order_relaxed); }
void set_highest(RxRtcp& s, uint64_t v) { s.highest = uint32_t(v); }

// Records an authenticated index in its SSRC's stream (claiming a slot for a
// new SSRC). False: a replay (a duplicate within the batch) or no slot free.
template <class S>
bool accept(S* streams, int ns, bool prev, uint32_t ssrc, uint64_t index, uint16_t* clock) {
  int i = find(streams, ns, ssrc);
  if (i < 0) {
    // Only an authenticated packet may claim a stream slot.
    i = prev ? 0 : victim(streams, ns, *clock);
    if (i < 0) return false;  // both streams live: refused, counted as a replay
    reset_stream(streams[i]);
    streams[i].ssrc = ssrc;
    streams[i].valid = 1;
    set_highest(streams[i], index);
    streams[i].window[0] = 1;
  } else {
    uint64_t hi = highest_of(streams[i]);
    if (seen(streams[i].window, hi, index)) return false;
    mark(streams[i].window, &hi, index);
    set_highest(streams[i], hi);
  }
  streams[i].stamp = (*clock)++;
  return true;
}

}  // namespace

void Engine::commit_rx(Op& op, Scratch& s) {
  CryptoState& st = *op.st;
  int ns = s.prev ? 1 : kStreams;
  bool ok = op.rtcp ? accept(s.prev ? &st.prev_rtcp : st.rx_rtcp, ns, s.prev, s.ssrc, s.index, &st.clock)
                    : accept(s.prev ? &st.prev_rtp : st.rx_rtp, ns, s.prev, s.ssrc, s.index, &st.clock);
  if (!ok) {
    op.verdict = Verdict::kReplay;
    return;
  }
  op.len = s.n;
  bump(st.decrypted, 1);
  if (s.prev)
    bump(st.prev_key_used, 1);
  else
    st.prev_live.store(0, std::memory_order_relaxed);  // the sender switched: drop the old key
}

bool Engine::prepare_tx(Op& op, Scratch& s) {
  const KeySet& ks = *op.cfg->tx;
  const SuiteInfo& in = info(ks.suite());
  const SessionKeys& sk = op.rtcp ? ks.rtcp() : ks.rtp();
  CryptoState& st = *op.st;
  uint8_t* p = op.p;
  s.ks = &ks;
  s.sk = &sk;
  if (!sk.cipher) {
    op.verdict = Verdict::kMalformed;
    return false;
  }
  JobSpec js{};
  js.key = sk.cipher;
  js.key_len = in.key_len;
  js.p = p;
  js.iv = s.iv;
  if (!op.rtcp) {
    uint32_t hdr = rtp_header_len(p, op.len);
    s.tag_len = in.srtp_tag;
    if (!hdr || op.len + std::max<uint32_t>(s.tag_len, 4) > op.room) {
      op.verdict = Verdict::kMalformed;
      return false;
    }
    s.hdr = hdr;
    s.n = op.len;
    s.ssrc = load32(p + 8);
    uint16_t seq = load16(p + 2);
    int i = find(st.tx_rtp, kStreams, s.ssrc);
    if (i < 0) {
      i = lru(st.tx_rtp, kStreams, st.clock);
      reset_stream(st.tx_rtp[i]);
      st.tx_rtp[i].ssrc = s.ssrc;
      st.tx_rtp[i].valid = 1;
      s.index = seq;
      st.tx_rtp[i].highest.store(s.index, std::memory_order_relaxed);
    } else {
      uint64_t hi = st.tx_rtp[i].highest.load(std::memory_order_relaxed);
      s.index = estimate(hi, seq);
      if (s.index > hi) st.tx_rtp[i].highest.store(s.index, std::memory_order_relaxed);
    }
    st.tx_rtp[i].stamp = st.clock++;
    js.start = hdr;
    js.plen = op.len - hdr;
    if (in.aead) {
      gcm_iv(s.iv, sk.salt, s.ssrc, s.index);
      js.aad = p;
      js.aad_len = hdr;
      js.tag = p + op.len;  // the tag is not part of the input: write in place
      gcm_job(gcm_, js, true, &s.job);
    } else {
      cm_iv(s.iv, sk.salt, s.ssrc, s.index);
      store32(p + op.len, uint32_t(s.index >> 16));  // ROC, authenticated
      js.hash_len = op.len + 4;
      js.ipad = sk.ipad;
      js.opad = sk.opad;
      js.tag = s.tag;
      cm_job(cm_, js, true, &s.job);
    }
    return true;
  }
  s.tag_len = in.srtcp_tag;
  if (op.len < kRtcpFixed || (p[0] >> 6) != 2 || op.len + 4 + s.tag_len > op.room) {
    op.verdict = Verdict::kMalformed;
    return false;
  }
  s.n = op.len;
  s.ssrc = load32(p + 4);
  int i = find(st.tx_rtcp, kStreams, s.ssrc);
  if (i < 0) {
    i = lru(st.tx_rtcp, kStreams, st.clock);
    reset_stream(st.tx_rtcp[i]);
    st.tx_rtcp[i].ssrc = s.ssrc;
    st.tx_rtcp[i].valid = 1;
  }
  st.tx_rtcp[i].stamp = st.clock++;
  s.index = st.tx_rtcp[i].next & 0x7fffffff;
  st.tx_rtcp[i].next = uint32_t(s.index + 1) & 0x7fffffff;
  s.word = 0x80000000u | uint32_t(s.index);  // always encrypted (E = 1)
  js.start = kRtcpFixed;
  js.plen = op.len - kRtcpFixed;
  if (in.aead) {
    gcm_iv(s.iv, sk.salt, s.ssrc, s.index);
    std::memcpy(s.aad, p, kRtcpFixed);
    store32(s.aad + kRtcpFixed, s.word);
    js.aad = s.aad;
    js.aad_len = sizeof s.aad;
    js.tag = p + op.len;
    store32(p + op.len + s.tag_len, s.word);
    gcm_job(gcm_, js, true, &s.job);
  } else {
    cm_iv(s.iv, sk.salt, s.ssrc, s.index);
    store32(p + op.len, s.word);
    js.hash_len = op.len + 4;
    js.ipad = sk.ipad;
    js.opad = sk.opad;
    js.tag = s.tag;
    cm_job(cm_, js, true, &s.job);
  }
  return true;
}

void Engine::finish_tx(Op& op, Scratch& s) {
  const SuiteInfo& in = info(s.ks->suite());
  if (!op.rtcp) {
    if (!in.aead) std::memcpy(op.p + s.n, s.tag, s.tag_len);
    op.len = s.n + s.tag_len;
  } else {
    if (!in.aead) std::memcpy(op.p + s.n + 4, s.tag, s.tag_len);
    op.len = s.n + 4 + s.tag_len;
  }
  bump(op.st->encrypted, 1);
}

void Engine::run(Op* ops, int n, uint32_t worker) {
  // With many flows the per-flow state and keys are cache misses, and each
  // is reached through the one before (state -> config -> key set). Walk the
  // batch once per level so that the misses of a level overlap.
  for (int i = 0; i < n; ++i) {
    __builtin_prefetch(ops[i].st, 1);
    __builtin_prefetch(reinterpret_cast<const char*>(ops[i].st) + 64, 1);
  }
  // Every op of a flow uses the config current now: a re-key can land
  // between two packets of one burst, and mixing keys over one state would
  // reset streams under the old key (and reuse its nonces).
  static const CryptoConfig kNoKeys;
  for (int i = 0; i < n; ++i) {
    ops[i].verdict = Verdict::kOk;
    if (const CryptoConfig* c = ops[i].st->config.load(std::memory_order_acquire)) {
      ops[i].cfg = c;
    } else if (!ops[i].cfg) {
      ops[i].cfg = &kNoKeys;  // not published (yet): nothing to do it with
      ops[i].verdict = Verdict::kMalformed;
    }
    __builtin_prefetch(ops[i].cfg);
  }
  for (int i = 0; i < n; ++i) {
    const CryptoConfig& c = *ops[i].cfg;
    for (const KeySet* k : {c.rx.get(), c.tx.get()}) {
      if (!k) continue;
      // The object and, behind it, its first stream type's keys (RTP keys
      // come first; RTCP-only key sets hold only RTCP keys).
      const char* b = reinterpret_cast<const char*>(k);
      for (size_t l = 0; l < KeySet::kHeader / 64 + 6; ++l) __builtin_prefetch(b + 64 * l);
    }
  }
  // Bind the streams to the current keys; a new rx key keeps the old one's
  // newest streams as the fallback until the sender is seen switching.
  for (int i = 0; i < n; ++i) {
    Op& op = ops[i];
    CryptoState& st = *op.st;
    uint32_t o = st.owner.load(std::memory_order_relaxed);
    if (o != worker) {
      if (o != UINT32_MAX) bump(st.owner_changes, 1);
      st.owner.store(worker, std::memory_order_relaxed);
    }
    const CryptoConfig& c = *op.cfg;
    if (c.rx && st.rx_id != c.rx->id()) {
      if (c.rx_prev && st.rx_id && st.rx_id == c.rx_prev->id()) {
        int r = 0;
        for (int k = 1; k < kStreams; ++k)
          if (st.rx_rtp[k].valid && int16_t(st.rx_rtp[k].stamp - st.rx_rtp[r].stamp) > 0) r = k;
        copy_stream(st.prev_rtp, st.rx_rtp[r]);
        int q = 0;
        for (int k = 1; k < kStreams; ++k)
          if (st.rx_rtcp[k].valid && int16_t(st.rx_rtcp[k].stamp - st.rx_rtcp[q].stamp) > 0) q = k;
        st.prev_rtcp = st.rx_rtcp[q];
        st.prev_id = st.rx_id;
        st.prev_live.store(1, std::memory_order_relaxed);
      } else {
        st.prev_live.store(0, std::memory_order_relaxed);
      }
      for (auto& s : st.rx_rtp) reset_stream(s);
      for (auto& s : st.rx_rtcp) reset_stream(s);
      st.rx_id = c.rx->id();
    }
    if (c.tx && st.tx_id != c.tx->id()) {
      for (auto& s : st.tx_rtp) reset_stream(s);
      for (auto& s : st.tx_rtcp) reset_stream(s);
      st.tx_id = c.tx->id();
    }
  }

  // Verify and decrypt: all jobs in flight at once, then check in order.
  bool any_rx = false;
  for (int i = 0; i < n; ++i) {
    Op& op = ops[i];
    scratch_[i].job = JobFlags{};
    if (op.cfg->rx && op.verdict == Verdict::kOk)
      any_rx |= prepare_rx(op, scratch_[i], *op.cfg->rx, false);
  }
  if (any_rx) {
    flush();
    bool any_retry = false;
    for (int i = 0; i < n; ++i) {
      Op& op = ops[i];
      Scratch& s = scratch_[i];
      if (!op.cfg->rx || op.verdict != Verdict::kOk) continue;
      bool good = s.job.ok && CRYPTO_memcmp(s.tag, s.saved, s.tag_len) == 0;
      if (good) {
        commit_rx(op, s);
        continue;
      }
      const CryptoState& st = *op.st;
      if (st.prev_live.load(std::memory_order_relaxed) && op.cfg->rx_prev && op.cfg->rx_prev->id() == st.prev_id) {
        s.retry = true;
        any_retry = true;
      } else {
        op.verdict = Verdict::kAuthFailed;
      }
    }
    if (any_retry) {
      // Rare (a re-key in flight): one packet at a time is fine.
      for (int i = 0; i < n; ++i) {
        Op& op = ops[i];
        Scratch& s = scratch_[i];
        if (!s.retry) continue;
        restore(op, s);
        if (!prepare_rx(op, s, *op.cfg->rx_prev, true)) continue;
        flush();
        if (s.job.ok && CRYPTO_memcmp(s.tag, s.saved, s.tag_len) == 0)
          commit_rx(op, s);
        else
          op.verdict = Verdict::kAuthFailed;
      }
    }
  }

  // Encrypt with the leaving leg's key.
  bool any_tx = false;
  for (int i = 0; i < n; ++i) {
    Op& op = ops[i];
    if (op.cfg->tx && op.verdict == Verdict::kOk) any_tx |= prepare_tx(op, scratch_[i]);
  }
  if (any_tx) {
    flush();
    for (int i = 0; i < n; ++i) {
      Op& op = ops[i];
      if (op.cfg->tx && op.verdict == Verdict::kOk) {
        if (scratch_[i].job.ok)
          finish_tx(op, scratch_[i]);
        else
          op.verdict = Verdict::kMalformed;
      }
    }
  }

  for (int i = 0; i < n; ++i) {
    CryptoState& st = *ops[i].st;
    switch (ops[i].verdict) {
      case Verdict::kOk: break;
      case Verdict::kAuthFailed: bump(st.auth_failed, 1); break;
      case Verdict::kReplay: bump(st.replayed, 1); break;
      case Verdict::kMalformed: bump(st.malformed, 1); break;
    }
  }
}

}  // namespace sluice::srtp
