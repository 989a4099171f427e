#pragma once
#include <CLI/CLI.hpp>

namespace snapimport::cli {

// `snapimport inspect docker://REF [--raw|--config]`
void addInspectCommand(CLI::App& app);

}  // namespace snapimport::cli
