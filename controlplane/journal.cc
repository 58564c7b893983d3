#include "controlplane/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

}  // namespace

Journal::~Journal() {
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
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno_text("cannot read", path_);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  size_t off = 0;
  Record r;
  while (data.size() - off >= 8) {
    uint32_t len = get_le32(data.data() + off);
    uint32_t sum = get_le32(data.data() + off + 4);
    if (len > kMaxRecord || data.size() - off - 8 < len) break;
    const char* p = data.data() + off + 8;
    if (fnv1a(p, len) != sum || !r.ParseFromArray(p, static_cast<int>(len))) break;
    each(r);
    ++replayed_;
    off += 8 + len;
  }
  torn_ = data.size() - off;
  if (torn_ && ::ftruncate(fd, static_cast<off_t>(off)) != 0) {
    *err = errno_text("cannot truncate the torn tail of", path_);
    ::close(fd);
    return false;
  }
  ::lseek(fd, static_cast<off_t>(off), SEEK_SET);
  fd_ = fd;
  base_ = off;
  appended_ = 0;
  return true;
}

void Journal::append(const Record& r) {
  if (fd_ < 0) return;
  std::string f = frame(r.SerializeAsString());
  if (!write_all(fd_, f)) {
    ++write_errors_;
    return;
  }
  appended_ += f.size();
}

bool Journal::rewrite(const std::function<void(const std::function<void(const Record&)>&)>& emit_all,
                      std::string* err) {
  if (fd_ < 0) {
    *err = "journal not open";
    return false;
  }
  std::string tmp = path_ + ".new";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = errno_text("cannot create", tmp);
    return false;
  }
  std::string out;
  bool ok = true;
  uint64_t total = 0;
  emit_all([&](const Record& r) {
    out += frame(r.SerializeAsString());
    if (out.size() >= (1u << 20)) {
      ok = ok && write_all(fd, out);
      total += out.size();
      out.clear();
    }
  });
  ok = ok && write_all(fd, out);
  total += out.size();
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    *err = errno_text("cannot write", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ::close(fd);
  if (fd_ < 0) {
    *err = errno_text("cannot reopen", path_);
    return false;
  }
  base_ = total;
  appended_ = 0;
  return true;
}

}  // namespace sluice::cp
