#pragma once
#include <CLI/CLI.hpp>

namespace snapimport::cli {

// `snapimport serve --root DIR --address SOCKET [--config FILE]`
void addServeCommand(CLI::App& app);

}  // namespace snapimport::cli
