#pragma once
// Running out of disk space is a state of the node, not a bug: every write under the root can meet
// it (ENOSPC, or EDQUOT under a quota). The store reports it as ErrorClass::ResourceExhausted with
// the operation, the path and strerror's "No space left on device", counts it in
// snapimport_no_space_errors_total{area} and logs it, all in one place (failNoSpace), so each
// failed operation is counted once whichever layer noticed it.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace snapimport::store {

// The `area` label values of snapimport_no_space_errors_total (common/Metrics.h lists them).
inline constexpr std::string_view kAreaContent = "content";      // blobs and ingests
inline constexpr std::string_view kAreaSnapshots = "snapshots";  // snapshot directories
inline constexpr std::string_view kAreaDatabase = "database";    // meta.db (SQLite)
inline constexpr std::string_view kAreaImport = "import";        // layers unpacking in staging/

// ENOSPC or EDQUOT.
bool isNoSpace(int err);
// True when `message` carries strerror(ENOSPC) or strerror(EDQUOT): for errors that arrive as text
// only (the unpacker's, libarchive's). strerror is asked at run time, so the locale cannot differ.
bool mentionsNoSpace(std::string_view message);
// Counts and logs one operation that failed for lack of space, then throws ResourceExhausted.
[[noreturn]] void failNoSpace(std::string_view area, const std::string& message);
// Free bytes on the filesystem holding `path` (statvfs f_bavail); UINT64_MAX when it cannot be
// asked, so a failing statvfs never refuses work by itself.
uint64_t availableBytes(const std::filesystem::path& path);
// Throws for a failed system call: ResourceExhausted (through failNoSpace) when `err` is ENOSPC or
// EDQUOT, Internal otherwise. The message is `what`: strerror(err); `what` names the path.
[[noreturn]] void failSystem(std::string_view area, const std::string& what, int err);

}  // namespace snapimport::store
