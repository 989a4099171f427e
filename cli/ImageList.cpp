#include "ImageList.h"

#include <stdexcept>

namespace snapimport::cli {

std::vector<std::string> readImageList(std::istream& in, const std::string& source) {
  std::vector<std::string> images;
  std::string line;
  for (int lineNo = 1; std::getline(in, line); ++lineNo) {
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    auto last = line.find_last_not_of(" \t\r");
    std::string ref = line.substr(first, last - first + 1);
    if (ref.find_first_of(" \t") != std::string::npos) {
      throw std::runtime_error(source + ":" + std::to_string(lineNo) +
                               ": expected one image reference per line, got \"" + ref + "\"");
    }
    images.push_back(ref);
  }
  return images;
}

}  // namespace snapimport::cli
