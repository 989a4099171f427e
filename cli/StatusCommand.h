#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "common/ImportProgress.h"

namespace snapimport::cli {

// `snapimport status [--config FILE | --admin-address SOCK] [--json]`: asks the running daemon,
// over its admin socket, what it is importing, and prints it per image and per layer.
void addStatusCommand(CLI::App& app);

// The human-readable view of a /status document (exposed for tests).
std::string renderStatus(const std::vector<progress::ImageProgress>& images);

// "1.5 MiB" style (exposed for tests).
std::string humanBytes(uint64_t bytes);

}  // namespace snapimport::cli
