#pragma once
#include <string_view>

namespace snapimport::unpack {

// Which extended attributes from a layer (or from a lower directory, when fixing implicit dirs)
// reach the diff directory. Allow-list: user.* (minus overlay's own user.overlay.*), file
// capabilities and POSIX ACLs. Never trusted.* (an image could plant trusted.overlay.redirect,
// metacopy or opaque), never security.selinux (labels belong to the host policy, as in umoci).
bool isCopyableXattr(std::string_view name);

}  // namespace snapimport::unpack
