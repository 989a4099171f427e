#pragma once
#include <string>
#include <string_view>
#include <utility>

namespace snapimport::unpack {

// Lexically cleans a tar entry name as if it were rooted at "/" (registry-and-security.md §5
// row 1): leading "/", "." and empty components vanish, ".." never climbs above the root.
// Returns the root-relative path without leading or trailing "/"; "" means the root itself.
// Throws UnpackError if a component is longer than NAME_MAX.
std::string cleanEntryPath(std::string_view name);

// Splits a cleaned path into (parent, leaf); parent is "" for top-level names.
std::pair<std::string_view, std::string_view> splitParent(std::string_view clean);

}  // namespace snapimport::unpack
