#pragma once
#include <string>
#include <string_view>

#include "Snapshot.h"

namespace snapimport::store {

// containerd's labels.Validate: key plus value at most 4096 bytes. Throws InvalidArgument.
void validateLabels(const Labels& labels);
// Keys and names are opaque but must be non-empty, bounded, and free of control characters
// (a NUL would be cut short by every C API downstream). Throws InvalidArgument naming `what`.
void validateKey(std::string_view key, std::string_view what);

constexpr size_t kMaxLabelSize = 4096;
constexpr size_t kMaxKeySize = 4096;

}  // namespace snapimport::store
