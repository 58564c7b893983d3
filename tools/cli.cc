#include "cli.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluicectl {

std::string Args::value(const std::string& name) const {
  auto it = flags_.find(name);
  return it == flags_.end() || it->second.empty() ? std::string() : it->second.back();
}

std::vector<std::string> Args::values(const std::string& name) const {
  auto it = flags_.find(name);
  return it == flags_.end() ? std::vector<std::string>() : it->second;
}

std::vector<std::string> Args::given() const {
  std::vector<std::string> out;
  for (const auto& [name, v] : flags_) out.push_back(name);
  return out;
}

Args parse_args(const std::vector<std::string>& argv, size_t from,
                const std::vector<FlagSpec>& specs, bool stop_at_positional) {
  Args out;
  for (size_t i = from; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      out.positional_.insert(out.positional_.end(), argv.begin() + long(i) + 1, argv.end());
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      if (stop_at_positional) {
        out.positional_.insert(out.positional_.end(), argv.begin() + long(i), argv.end());
        break;
      }
      out.positional_.push_back(a);
      continue;
    }
    std::string name;
    std::string val;
    bool has_val = false;
    if (a == "-h") {
      name = "help";
    } else if (a[1] != '-') {
      throw UsageError(absl::StrCat("unknown option '", a, "'"));
    } else {
      size_t eq = a.find('=');
      name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (eq != std::string::npos) {
        val = a.substr(eq + 1);
        has_val = true;
      }
    }
    auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end()) throw UsageError(absl::StrCat("unknown option '--", name, "'"));
    if (spec->takes_value) {
      if (!has_val) {
        if (i + 1 >= argv.size() || argv[i + 1].rfind("--", 0) == 0)
          throw UsageError(absl::StrCat("option --", name, " needs a value"));
        val = argv[++i];
      }
      if (val.empty()) throw UsageError(absl::StrCat("option --", name, " needs a value"));
    } else if (has_val) {
      throw UsageError(absl::StrCat("option --", name, " takes no value"));
    }
    auto& vals = out.flags_[name];
    if (!vals.empty() && !spec->repeatable)
      throw UsageError(absl::StrCat("option --", name, " given more than once"));
    vals.push_back(val);
  }
  return out;
}

uint64_t parse_uint(const std::string& flag, const std::string& v, uint64_t min, uint64_t max) {
  uint64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || r.ec == std::errc::invalid_argument || r.ptr != v.data() + v.size())
    throw UsageError(absl::StrCat(flag, ": '", v, "' is not a non-negative integer"));
  if (r.ec == std::errc::result_out_of_range || x < min || x > max)
    throw UsageError(absl::StrCat(flag, ": ", v, " is out of range ", min, "..", max));
  return x;
}

double parse_seconds(const std::string& flag, const std::string& v, double min, double max) {
  bool dot = false, digit = false;
  for (char c : v) {
    if (c == '.' && !dot) {
      dot = true;
    } else if (c >= '0' && c <= '9') {
      digit = true;
    } else {
      digit = false;
      break;
    }
  }
  if (!digit) throw UsageError(absl::StrCat(flag, ": '", v, "' is not a number of seconds"));
  double x = std::strtod(v.c_str(), nullptr);
  if (!std::isfinite(x) || x < min || x > max)
    throw UsageError(absl::StrCat(flag, ": ", v, " is out of range ", min, "..", max, " seconds"));
  return x;
}

HostPort parse_endpoint(const std::string& flag, const std::string& v, uint32_t min_port) {
  // Only the shape is checked here; whether the address is acceptable (an
  // IPv4 address today, a relay address for a key) is the dataplane's call,
  // and its INVALID_ARGUMENT names the field.
  HostPort hp;
  std::string port;
  bool ok = false;
  if (!v.empty() && v[0] == '[') {
    size_t close = v.find("]:");
    if (close != std::string::npos) {
      hp.address = v.substr(1, close - 1);
      port = v.substr(close + 2);
      ok = !hp.address.empty() &&
           hp.address.find_first_not_of("0123456789abcdefABCDEF:.") == std::string::npos;
    }
  } else {
    size_t colon = v.rfind(':');
    if (colon != std::string::npos) {
      hp.address = v.substr(0, colon);
      port = v.substr(colon + 1);
      ok = !hp.address.empty() && hp.address.find_first_not_of("0123456789.") == std::string::npos;
    }
  }
  if (!ok)
    throw UsageError(absl::StrCat(flag, ": '", v, "' is not ADDRESS:PORT (e.g. 192.0.2.10:30000)"));
  hp.port = uint32_t(parse_uint(flag + " port", port, min_port, 65535));
  return hp;
}

std::string check_target(const std::string& flag, const std::string& v) {
  for (const char* scheme : {"unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:", "vsock:"}) {
    std::string s(scheme);
    if (v.rfind(s, 0) == 0) {
      std::string rest = v.substr(s.size());
      if (rest.empty() || rest == "//" || rest == "///")
        throw UsageError(absl::StrCat(flag, ": '", v, "' names no address"));
      return v;
    }
  }
  size_t colon = v.rfind(':');
  std::string host = colon == std::string::npos ? "" : v.substr(0, colon);
  if (host.empty() || host == "[]")
    throw UsageError(absl::StrCat(flag, ": '", v, "' is neither unix:/path nor host:port"));
  parse_uint(flag + " port", v.substr(colon + 1), 1, 65535);
  return v;
}

std::string format_seconds1(int64_t seconds, int32_t nanos) {
  return absl::StrFormat("%.1f", double(seconds) + double(nanos) / 1e9);
}

std::string format_uptime(int64_t s) {
  if (s < 0) s = 0;
  int64_t d = s / 86400;
  s %= 86400;
  std::string hms = absl::StrFormat("%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return d ? absl::StrCat(d, "d ", hms) : hms;
}

std::string format_bytes(uint64_t b) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double x = double(b);
  int u = 0;
  while (x >= 1024 && u < 4) {
    x /= 1024;
    ++u;
  }
  return u ? absl::StrFormat("%.1f %s", x, units[u]) : absl::StrCat(b, " B");
}

std::string format_utc_ms(int64_t seconds, int32_t nanos) {
  time_t t = time_t(seconds);
  struct tm tm;
  if (!gmtime_r(&t, &tm)) return "-";
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return absl::StrFormat("%s.%03dZ", buf, (nanos < 0 ? 0 : nanos) / 1000000);
}

Table::Table(std::vector<std::string> headers, std::string align)
    : headers_(std::move(headers)), align_(std::move(align)) {
  align_.resize(headers_.size(), 'l');
}

void Table::add(std::vector<std::string> row) {
  row.resize(headers_.size());
  rows_.push_back(std::move(row));
}

void Table::print(FILE* out) const {
  std::vector<size_t> w(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) {
    w[c] = headers_[c].size();
    for (const auto& r : rows_) w[c] = std::max(w[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t c = 0; c < r.size(); ++c) {
      bool last = c + 1 == r.size();
      size_t pad = w[c] - r[c].size();
      if (align_[c] == 'r') s.append(pad, ' ');
      s += r[c];
      if (align_[c] != 'r' && !last) s.append(pad, ' ');
      if (!last) s += "  ";
    }
    std::fprintf(out, "%s\n", s.c_str());
  };
  line(headers_);
  for (const auto& r : rows_) line(r);
}

}  // namespace sluicectl
