// Loading and validating sluice-dataplane's configuration file.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "sluice/dataplane/v1/config.pb.h"

namespace sluice {

// Parses protobuf text format and checks every semantic rule. Errors name
// the file, line and field ("ports[1].address: ...").
absl::StatusOr<::sluice::dataplane::v1::DataplaneConfig> load_config_file(const std::string& path);
absl::StatusOr<::sluice::dataplane::v1::DataplaneConfig> parse_config(const std::string& text,
                                                    const std::string& origin);
// Fills defaults and validates; exposed for tests.
absl::Status validate_config(::sluice::dataplane::v1::DataplaneConfig& cfg);

}  // namespace sluice
