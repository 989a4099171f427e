#pragma once
#include <optional>
#include <string_view>

namespace snapimport::unpack {

enum class Compression { None, Gzip, Zstd };

// The compression of a layer media type, or nullopt for anything that is not a layer we unpack
// (configs, artifacts, in-toto, ...). Parameters after ';' are ignored.
std::optional<Compression> layerCompression(std::string_view mediaType);

// Accepts the short names the CLI offers ("tar", "gzip", "tgz", "zstd") as well as media types.
std::optional<Compression> compressionByName(std::string_view name);

}  // namespace snapimport::unpack
