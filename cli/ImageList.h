#pragma once
#include <istream>
#include <string>
#include <vector>

namespace snapimport::cli {

// Reads an image list: one reference per line; blank lines and lines starting with '#' are
// skipped, surrounding whitespace is trimmed. A line with inner whitespace is an error naming
// `source` and the line number.
std::vector<std::string> readImageList(std::istream& in, const std::string& source);

}  // namespace snapimport::cli
