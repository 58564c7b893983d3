// Command-line plumbing for sluicectl: a small flag parser, value parsers
// with range checks, and a plain-text table printer. Nothing here knows about
// gRPC or the dataplane protocol.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluicectl {

// Bad command-line input. main() prints the message (and a pointer to the
// relevant --help) to stderr and exits 2.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& msg) : std::runtime_error(msg) {}
};

struct FlagSpec {
  std::string name;  // without the leading "--"
  bool takes_value;
  bool repeatable = false;
};

// The result of parsing: flags by name (values in order of appearance; a
// flag without a value holds one empty string) and positional arguments.
class Args {
 public:
  bool has(const std::string& name) const { return flags_.count(name) != 0; }
  // The value of a flag given once; empty when absent.
  std::string value(const std::string& name) const;
  // All values of a repeatable flag.
  std::vector<std::string> values(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Names of the flags that were given, in name order.
  std::vector<std::string> given() const;

 private:
  friend Args parse_args(const std::vector<std::string>&, size_t, const std::vector<FlagSpec>&,
                         bool);
  std::map<std::string, std::vector<std::string>> flags_;
  std::vector<std::string> positional_;
};

// Parses argv[from..]. Accepts "--flag value", "--flag=value", "-h" (as
// --help) and "--" (everything after it is positional). With
// stop_at_positional, parsing stops at the first positional argument, which
// is returned together with the remaining arguments as positional.
Args parse_args(const std::vector<std::string>& argv, size_t from,
                const std::vector<FlagSpec>& specs, bool stop_at_positional = false);

// Value parsers; they throw UsageError naming the flag.
uint64_t parse_uint(const std::string& flag, const std::string& v, uint64_t min, uint64_t max);
// Decimal seconds ("5", "2.5") within [min, max].
double parse_seconds(const std::string& flag, const std::string& v, double min, double max);

struct HostPort {
  std::string address;
  uint32_t port = 0;
};
// "A.B.C.D:PORT" or "[IPv6]:PORT" by shape (the dataplane validates the
// address itself). min_port lets a caller refuse port 0.
HostPort parse_endpoint(const std::string& flag, const std::string& v, uint32_t min_port);

// Validates a gRPC target: "unix:/path", "unix:///path", "unix-abstract:name",
// "dns:...", "ipv4:...", "ipv6:..." or "host:port". Returns it unchanged.
std::string check_target(const std::string& flag, const std::string& v);

// Human formats.
std::string format_seconds1(int64_t seconds, int32_t nanos);  // "12.3"
std::string format_uptime(int64_t seconds);                   // "2d 03:04:05"
std::string format_bytes(uint64_t bytes);                     // "12.3 MiB"
std::string format_utc_ms(int64_t seconds, int32_t nanos);    // "2024-05-01T12:00:00.123Z"

// A table of left- or right-aligned text columns separated by two spaces.
class Table {
 public:
  // align: one character per column, 'l' or 'r'.
  Table(std::vector<std::string> headers, std::string align);
  void add(std::vector<std::string> row);
  size_t rows() const { return rows_.size(); }
  void print(FILE* out) const;

 private:
  std::vector<std::string> headers_;
  std::string align_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace sluicectl
