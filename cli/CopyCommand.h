#pragma once
#include <CLI/CLI.hpp>

namespace snapimport::cli {

// `snapimport copy SRC DST` between docker://, oci:, docker-archive: and dir: (skopeo's names).
void addCopyCommand(CLI::App& app);

}  // namespace snapimport::cli
