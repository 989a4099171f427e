#pragma once
// Fault injection for crash-consistency tests: SNAPIMPORT_CRASH_AT=<point>[:<n>] makes the
// process SIGKILL itself the n-th time (default first) it reaches <point>. Unset, it costs one
// relaxed load.
#include <string_view>

namespace snapimport::store {

void crashPoint(std::string_view name);

}  // namespace snapimport::store
