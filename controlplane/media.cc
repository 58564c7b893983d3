#include "controlplane/media.h"

#include <openssl/rand.h>

#include "absl/strings/escaping.h"

namespace sluice::cp {

PortPool::PortPool(uint16_t min, uint16_t max) : min_(min) {
  if (min % 2) ++min;
  min_ = min;
  for (uint32_t p = min; p + 1 <= max; p += 2) free_.push_back(static_cast<uint16_t>(p));
  total_ = free_.size();
  taken_.assign(total_, false);
}

uint16_t PortPool::take() {
  if (free_.empty()) return 0;
  uint16_t p = free_.front();
  free_.pop_front();
  taken_[(p - min_) / 2] = true;
  return p;
}

void PortPool::give(uint16_t port) {
  if (port < min_ || (port - min_) % 2) return;
  size_t i = (port - min_) / 2;
  if (i >= total_ || !taken_[i]) return;
  taken_[i] = false;
  free_.push_back(port);
}

bool PortPool::claim(uint16_t port) {
  if (port < min_ || (port - min_) % 2) return false;
  size_t i = (port - min_) / 2;
  if (i >= total_ || taken_[i]) return false;
  for (auto it = free_.begin(); it != free_.end(); ++it)
    if (*it == port) {
      free_.erase(it);
      break;
    }
  taken_[i] = true;
  return true;
}

namespace {
constexpr SuiteInfo kSuites[] = {
    {"AES_CM_128_HMAC_SHA1_80", 1, 16, 14}, {"AES_CM_128_HMAC_SHA1_32", 2, 16, 14},
    {"AES_256_CM_HMAC_SHA1_80", 3, 32, 14}, {"AEAD_AES_128_GCM", 4, 16, 12},
    {"AEAD_AES_256_GCM", 5, 32, 12},
};
}  // namespace

const SuiteInfo* suite_by_name(const std::string& name) {
  for (const SuiteInfo& s : kSuites)
    if (name == s.name) return &s;
  return nullptr;
}

const SuiteInfo* suite_by_number(int n) {
  for (const SuiteInfo& s : kSuites)
    if (n == s.dataplane) return &s;
  return nullptr;
}

std::string new_inline_key(const SuiteInfo& suite) {
  std::string raw(static_cast<size_t>(suite.key_len + suite.salt_len), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1)
    return std::string();
  return absl::Base64Escape(raw);
}

bool split_inline_key(const SuiteInfo& suite, const std::string& b64, std::string* key,
                      std::string* salt) {
  std::string raw;
  if (!absl::Base64Unescape(b64, &raw)) return false;
  if (raw.size() != static_cast<size_t>(suite.key_len + suite.salt_len)) return false;
  *key = raw.substr(0, static_cast<size_t>(suite.key_len));
  *salt = raw.substr(static_cast<size_t>(suite.key_len));
  return true;
}

}  // namespace sluice::cp
