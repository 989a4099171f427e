#pragma once
// Fault injection for crash-consistency and disk-full tests, at named points in the store and the
// importer. Unset, each costs one relaxed load.
//   SNAPIMPORT_CRASH_AT=<point>[:<n>]  the process SIGKILLs itself the n-th time (default first)
//                                      it reaches <point>.
//   SNAPIMPORT_PAUSE_AT=<point>[:<n>]  the n-th time, the thread logs "paused at fault point" and
//   SNAPIMPORT_PAUSE_FILE=<path>       waits until <path> exists (at most 5 minutes), once. A test
//                                      uses the pause to change the world at an exact point, e.g.
//                                      to fill the disk right before a transaction commits.
#include <string_view>

namespace snapimport::store {

void crashPoint(std::string_view name);

}  // namespace snapimport::store
