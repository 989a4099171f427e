#pragma once
#include <CLI/CLI.hpp>

namespace snapimport::cli {

// `snapimport tags docker://REPO`, following pagination.
void addTagsCommand(CLI::App& app);

}  // namespace snapimport::cli
