// Config files in protobuf text format, shared by both processes: parse
// errors carry "file:line:column: message", semantic errors from `validate`
// are prefixed with the file name.
#pragma once

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice {

template <typename Config>
absl::StatusOr<Config> parse_text_config(const std::string& text, const std::string& origin,
                                         const std::function<absl::Status(Config&)>& validate) {
  class Collector : public google::protobuf::io::ErrorCollector {
   public:
    explicit Collector(const std::string& origin) : origin_(origin) {}
    void AddError(int line, int column, const std::string& message) override {
      errors.push_back(absl::StrCat(origin_, ":", line + 1, ":", column + 1, ": ", message));
    }
    void AddWarning(int line, int column, const std::string& message) override {
      AddError(line, column, message);
    }
    std::vector<std::string> errors;

   private:
    const std::string& origin_;
  };
  Config cfg;
  google::protobuf::TextFormat::Parser parser;
  Collector errors(origin);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &cfg))
    return absl::InvalidArgumentError(absl::StrJoin(errors.errors, "\n"));
  absl::Status st = validate(cfg);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(origin, ": ", st.message()));
  return cfg;
}

// The whole file, or NOT_FOUND naming it.
inline absl::StatusOr<std::string> read_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open config file"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace sluice
