#pragma once
#include <CLI/CLI.hpp>

namespace snapimport::cli {

// `snapimport unpack [--media-type TYPE] [--lower DIR]... FILE|- DIR`: extracts one layer exactly
// as the importer would and prints its diff_id and statistics. For debugging and for comparing
// with other tools.
void addUnpackCommand(CLI::App& app);

}  // namespace snapimport::cli
