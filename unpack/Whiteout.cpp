#include "unpack/Whiteout.h"

#include <string>

#include "unpack/Unpacker.h"

namespace snapimport::unpack {

Whiteout Whiteout::classify(std::string_view leaf) {
  if (!leaf.starts_with(kWhiteoutPrefix)) return {};
  if (leaf == kOpaqueMarker) return {Kind::Opaque, {}};
  if (leaf.starts_with(kWhiteoutMetaPrefix)) return {Kind::Meta, {}};
  std::string_view target = leaf.substr(kWhiteoutPrefix.size());
  if (target.empty() || target == "." || target == ".." ||
      target.find('/') != std::string_view::npos) {
    throw UnpackError("invalid whiteout \"" + std::string(leaf) +
                      "\": its target must be a plain name");
  }
  return {Kind::Remove, target};
}

}  // namespace snapimport::unpack
