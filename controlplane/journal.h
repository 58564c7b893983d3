// The control plane's journal: an append-only file of JournalRecords
// (proto/sluice/controlplane/v1/journal.proto) under state_dir, replayed at
// start-up so that a restarted control plane still knows its established
// calls and NAT bindings.
//
// Compaction reads the file, not the owner's state: once the appended
// records outgrow the last compacted size, a thread replays the file into
// the latest record per call and binding (dropping ended calls, removed and
// expired bindings), writes that aside, copies the records appended
// meanwhile, fsyncs and renames it over the journal. The loop thread only
// ever appends; it waits for the compactor only while that copies the
// tail (journal stall, reported).
//
// Appends go straight to the kernel without fsync: the journal is there for
// a control plane that crashed or was restarted. A compacted file is synced
// before it replaces the old one, so a power loss never leaves a renamed
// but empty journal.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace sluice::controlplane::v1 {
class JournalRecord;
}

namespace sluice::cp {

class Journal {
 public:
  using Record = ::sluice::controlplane::v1::JournalRecord;
  Journal() = default;
  ~Journal();  // waits for a compaction under way
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Creates `dir` (mode 0700) if needed, replays `dir`/journal through
  // `each`, and opens it for appending. False with *err on I/O errors.
  bool open(const std::string& dir, const std::function<void(const Record&)>& each,
            std::string* err);
  // Appends one record; starts a compaction when the file has outgrown
  // four times its last compacted size (and 4 MiB).
  void append(const Record& r);
  // Starts a compaction now (unless one is under way); with `wait`, returns
  // once it is done. False when it failed (see last_error()).
  bool compact(bool wait);
  bool wants_compaction() const;

  uint64_t replayed() const { return replayed_; }
  uint64_t torn() const { return torn_; }  // bytes ignored after the last good record
  uint64_t write_errors() const { return write_errors_; }
  uint64_t bytes() const;
  const std::string& path() const { return path_; }
  uint64_t compactions() const { return compactions_; }
  uint64_t compaction_failures() const { return compaction_failures_; }
  uint64_t compaction_max_us() const { return compaction_max_us_; }  // on the thread
  uint64_t stall_max_us() const { return stall_max_us_; }            // longest append
  std::string last_error() const;

  // The frame: length, FNV-1a of the payload, payload. Exposed for tests.
  static std::string frame(const std::string& payload);

 private:
  bool run_compaction();
  void start_locked();           // mu_ held
  bool outgrown_locked() const;  // mu_ held: four times the last compacted size, and 4 MiB

  std::string path_;
  mutable std::mutex mu_;  // fd_, base_, appended_, error_
  int fd_ = -1;
  uint64_t base_ = 0, appended_ = 0;
  std::string error_;
  std::thread worker_;
  std::atomic<bool> busy_{false};
  uint64_t replayed_ = 0, torn_ = 0;
  std::atomic<uint64_t> write_errors_{0}, compactions_{0}, compaction_failures_{0},
      compaction_max_us_{0}, stall_max_us_{0};
};

}  // namespace sluice::cp
