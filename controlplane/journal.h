// The control plane's journal: an append-only file of JournalRecords
// (proto/sluice/controlplane/v1/journal.proto) under state_dir, replayed at
// start-up so that a restarted control plane still knows its established
// calls and NAT bindings, and rewritten with only the live state once the
// appended records outgrow it.
//
// Writes go straight to the kernel (no fsync): the journal is there for a
// control plane that crashed or was restarted, not for a host that lost
// power (the dataplane's flows would be gone then too).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace sluice::controlplane::v1 {
class JournalRecord;
}

namespace sluice::cp {

class Journal {
 public:
  using Record = ::sluice::controlplane::v1::JournalRecord;
  Journal() = default;
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Creates `dir` (mode 0700) if needed, replays `dir`/journal through
  // `each`, and opens it for appending. False with *err on I/O errors.
  bool open(const std::string& dir, const std::function<void(const Record&)>& each,
            std::string* err);
  void append(const Record& r);
  // Replaces the file with what `emit_all` emits (written aside, then
  // renamed over it).
  bool rewrite(const std::function<void(const std::function<void(const Record&)>&)>& emit_all,
               std::string* err);
  // True once the appended bytes exceed four times the last rewrite (and 4 MiB).
  bool wants_rewrite() const { return appended_ > 4 * base_ + (4u << 20); }

  uint64_t replayed() const { return replayed_; }
  uint64_t torn() const { return torn_; }  // bytes ignored after the last good record
  uint64_t write_errors() const { return write_errors_; }
  uint64_t bytes() const { return base_ + appended_; }
  const std::string& path() const { return path_; }

  // The frame: length, FNV-1a of the payload, payload. Exposed for tests.
  static std::string frame(const std::string& payload);

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t base_ = 0, appended_ = 0;
  uint64_t replayed_ = 0, torn_ = 0, write_errors_ = 0;
};

}  // namespace sluice::cp
