// sluice-controlplane's configuration: protobuf text (proto/sluice/
// controlplane/v1/config.proto), defaults filled in, semantics checked with
// errors that name the field.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "sluice/controlplane/v1/config.pb.h"

namespace sluice::cp {

absl::StatusOr<controlplane::v1::ControlplaneConfig> parse_config(const std::string& text,
                                                                  const std::string& origin);
absl::StatusOr<controlplane::v1::ControlplaneConfig> load_config_file(const std::string& path);
// Fills defaults and checks; names the offending field.
absl::Status validate_config(controlplane::v1::ControlplaneConfig& cfg);

}  // namespace sluice::cp
