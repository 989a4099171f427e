#pragma once
// OCI whiteouts (image-spec layer.md) and their overlayfs form (registry-and-security.md §4).
#include <string_view>

namespace snapimport::unpack {

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

struct Whiteout {
  enum class Kind {
    None,    // an ordinary name
    Opaque,  // ".wh..wh..opq": hide every lower child of the parent directory
    Remove,  // ".wh.<target>": hide <target> of the lower layers
    Meta,    // other ".wh..wh.*" names (aufs bookkeeping such as .wh..wh.plnk): ignored
  };
  Kind kind = Kind::None;
  std::string_view target;  // for Remove

  // Classifies one leaf name; throws UnpackError for whiteouts whose target would escape the
  // directory or name nothing ("", ".", ".."), as containerd's validateWhiteout does.
  static Whiteout classify(std::string_view leaf);
  static bool hasPrefix(std::string_view name) { return name.starts_with(kWhiteoutPrefix); }
};

// Overlay xattr that marks a directory opaque.
inline const char* opaqueXattr(bool userxattr) {
  return userxattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
}

}  // namespace snapimport::unpack
