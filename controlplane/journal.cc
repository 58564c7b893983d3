#include "controlplane/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "sluice/controlplane/v1/journal.pb.h"

namespace sluice::cp {

namespace {

uint32_t fnv1a(const char* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<uint8_t>(p[i]);
    h *= 16777619u;
  }
  return h;
}

void put_le32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t get_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + strerror(errno);
}

constexpr uint32_t kMaxRecord = 1u << 20;

// Walks the frames of `data` from `off`, calling `each(payload offset,
// length)` for every whole one whose checksum holds; returns where the good
// frames end.
template <typename Fn>
size_t scan(const std::string& data, size_t off, Fn&& each) {
  while (data.size() - off >= 8) {
    uint32_t len = get_le32(data.data() + off);
    uint32_t sum = get_le32(data.data() + off + 4);
    if (len > kMaxRecord || data.size() - off - 8 < len) break;
    if (fnv1a(data.data() + off + 8, len) != sum) break;
    if (!each(off + 8, len)) break;
    off += 8 + len;
  }
  return off;
}

// Reads from `fd` at `off` to its end (or `limit` bytes) into *out.
bool read_from(int fd, uint64_t off, uint64_t limit, std::string* out) {
  char buf[1 << 16];
  while (limit) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(limit, sizeof buf));
    ssize_t n = ::pread(fd, buf, want, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
    limit -= static_cast<uint64_t>(n);
  }
  return true;
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t micros_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - t0)
                                   .count());
}

void raise_to(std::atomic<uint64_t>* worst, uint64_t v) {
  uint64_t cur = worst->load(std::memory_order_relaxed);
  while (v > cur && !worst->compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

Journal::~Journal() {
  if (worker_.joinable()) worker_.join();
  if (fd_ >= 0) ::close(fd_);
}

std::string Journal::frame(const std::string& payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  put_le32(&out, static_cast<uint32_t>(payload.size()));
  put_le32(&out, fnv1a(payload.data(), payload.size()));
  out += payload;
  return out;
}

bool Journal::open(const std::string& dir, const std::function<void(const Record&)>& each,
                   std::string* err) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *err = errno_text("cannot create state_dir", dir);
    return false;
  }
  path_ = dir + "/journal";
  int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = errno_text("cannot open", path_);
    return false;
  }
  ::fchmod(fd, 0600);
  std::string data;
  if (!read_from(fd, 0, UINT64_MAX, &data)) {
    *err = errno_text("cannot read", path_);
    ::close(fd);
    return false;
  }
  Record r;
  size_t off = scan(data, 0, [&](size_t at, uint32_t len) {
    if (!r.ParseFromArray(data.data() + at, static_cast<int>(len))) return false;
    each(r);
    ++replayed_;
    return true;
  });
  torn_ = data.size() - off;
  if (torn_ && ::ftruncate(fd, static_cast<off_t>(off)) != 0) {
    *err = errno_text("cannot truncate the torn tail of", path_);
    ::close(fd);
    return false;
  }
  ::lseek(fd, static_cast<off_t>(off), SEEK_SET);
  std::lock_guard<std::mutex> lock(mu_);
  fd_ = fd;
  base_ = off;
  appended_ = 0;
  return true;
}

void Journal::append(const Record& r) {
  std::string f = frame(r.SerializeAsString());
  auto t0 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return;
  if (!write_all(fd_, f)) {
    ++write_errors_;
  } else {
    appended_ += f.size();
    if (!busy_ && outgrown_locked()) start_locked();
  }
  raise_to(&stall_max_us_, micros_since(t0));
}

bool Journal::outgrown_locked() const { return appended_ > 4 * base_ + (4u << 20); }

bool Journal::wants_compaction() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outgrown_locked();
}

uint64_t Journal::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return base_ + appended_;
}

std::string Journal::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void Journal::start_locked() {
  // Only the owner's thread starts compactions, so worker_ is its alone; a
  // finished worker is joined at once.
  if (worker_.joinable()) worker_.join();
  busy_ = true;
  worker_ = std::thread([this] {
    auto t0 = std::chrono::steady_clock::now();
    bool ok = run_compaction();
    raise_to(&compaction_max_us_, micros_since(t0));
    ++(ok ? compactions_ : compaction_failures_);
    busy_ = false;
  });
}

bool Journal::compact(bool wait) {
  uint64_t failures = compaction_failures_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ < 0) return false;
    if (!busy_) start_locked();
  }
  if (!wait) return true;
  if (worker_.joinable()) worker_.join();
  return compaction_failures_ == failures;
}

bool Journal::run_compaction() {
  auto fail = [this](const std::string& e) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = e;
    fprintf(stderr, "sluice-controlplane: journal compaction failed: %s\n", e.c_str());
    return false;
  };
  uint64_t end;
  {
    std::lock_guard<std::mutex> lock(mu_);
    end = base_ + appended_;
  }
  // The file only grows while we read it: appends go to its end, and only
  // this thread replaces it.
  int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (rfd < 0) return fail(errno_text("cannot open", path_));
  std::string data;
  bool read_ok = read_from(rfd, 0, end, &data);
  if (!read_ok) {
    ::close(rfd);
    return fail(errno_text("cannot read", path_));
  }
  // The latest frame of each live call and binding, by key.
  std::unordered_map<std::string, std::pair<size_t, uint32_t>> live;
  int64_t now = unix_ms();
  Record r;
  scan(data, 0, [&](size_t at, uint32_t len) {
    if (!r.ParseFromArray(data.data() + at, static_cast<int>(len))) return false;
    switch (r.record_case()) {
      case Record::kCall: live["c" + std::to_string(r.call().id())] = {at, len}; break;
      case Record::kCallEnded: live.erase("c" + std::to_string(r.call_ended())); break;
      case Record::kBinding:
        if (r.binding().expires_unix_ms() && r.binding().expires_unix_ms() <= now)
          live.erase("b" + r.binding().token());
        else
          live["b" + r.binding().token()] = {at, len};
        break;
      case Record::kBindingRemoved: live.erase("b" + r.binding_removed()); break;
      case Record::kSubscription:
        if (r.subscription().expires_unix_ms() <= now)
          live.erase("s" + std::to_string(r.subscription().id()));
        else
          live["s" + std::to_string(r.subscription().id())] = {at, len};
        break;
      case Record::kSubscriptionEnded: live.erase("s" + std::to_string(r.subscription_ended())); break;
      default: break;
    }
    return true;
  });
  std::string tmp = path_ + ".new";
  int wfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (wfd < 0) {
    ::close(rfd);
    return fail(errno_text("cannot create", tmp));
  }
  auto abandon = [&](const std::string& e) {
    ::close(wfd);
    ::close(rfd);
    ::unlink(tmp.c_str());
    return fail(e);
  };
  std::string out;
  uint64_t written = 0;
  for (const auto& [key, at] : live) {
    out.append(data, at.first - 8, at.second + 8);
    if (out.size() >= (1u << 20)) {
      if (!write_all(wfd, out)) return abandon(errno_text("cannot write", tmp));
      written += out.size();
      out.clear();
    }
  }
  if (!write_all(wfd, out)) return abandon(errno_text("cannot write", tmp));
  written += out.size();
  data = std::string();
  if (::fdatasync(wfd) != 0) return abandon(errno_text("cannot sync", tmp));
  {
    // What was appended meanwhile goes after the compacted records, as it
    // is; the owner waits for this copy, not for the compaction.
    std::lock_guard<std::mutex> lock(mu_);
    std::string tail;
    if (!read_from(rfd, end, UINT64_MAX, &tail) || !write_all(wfd, tail) ||
        ::rename(tmp.c_str(), path_.c_str()) != 0) {
      ::close(wfd);
      ::close(rfd);
      ::unlink(tmp.c_str());
      error_ = errno_text("cannot finish", tmp);
      fprintf(stderr, "sluice-controlplane: journal compaction failed: %s\n", error_.c_str());
      return false;
    }
    ::close(fd_);
    fd_ = wfd;  // positioned at its end: appends continue in the new file
    base_ = written + tail.size();
    appended_ = 0;
    error_.clear();
  }
  ::close(rfd);
  std::string dir = path_.substr(0, path_.rfind('/'));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename itself
    ::close(dfd);
  }
  return true;
}

}  // namespace sluice::cp
