#include "unpack/EntryPath.h"

#include <climits>
#include <vector>

#include "unpack/Unpacker.h"

namespace snapimport::unpack {

std::string cleanEntryPath(std::string_view name) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    if (part.size() > NAME_MAX) {
      throw UnpackError("entry name component of " + std::to_string(part.size()) +
                        " bytes exceeds NAME_MAX (" + std::to_string(NAME_MAX) + ")");
    }
    parts.push_back(part);
  }
  std::string out;
  out.reserve(name.size());
  for (auto part : parts) {
    if (!out.empty()) out.push_back('/');
    out.append(part);
  }
  return out;
}

std::pair<std::string_view, std::string_view> splitParent(std::string_view clean) {
  size_t slash = clean.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), clean};
  return {clean.substr(0, slash), clean.substr(slash + 1)};
}

}  // namespace snapimport::unpack
