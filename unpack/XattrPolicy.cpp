#include "unpack/XattrPolicy.h"

namespace snapimport::unpack {

bool isCopyableXattr(std::string_view name) {
  if (name.starts_with("user.")) return !name.starts_with("user.overlay.");
  return name == "security.capability" || name == "system.posix_acl_access" ||
         name == "system.posix_acl_default";
}

}  // namespace snapimport::unpack
