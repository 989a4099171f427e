#pragma once
// containerd's filter language, as used by List on snapshots and content:
//   selector  := fieldpath [ ("==" | "!=" | "~=") value ]
//   fieldpath := field ("." field)*     field may be "quoted"
//   filter    := selector ("," selector)*   (comma means AND)
// Several filter strings are ORed. No filters at all matches everything.
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace snapimport::store {

// Looks a field path up on the object being filtered; nullopt means "not present".
using FieldLookup = std::function<std::optional<std::string>(const std::vector<std::string>& path)>;

class Filter {
 public:
  enum class Op { Present, Equal, NotEqual, Matches };
  struct Selector {
    std::vector<std::string> fieldpath;
    Op op = Op::Present;
    std::string value;
    std::optional<std::regex> regex;
  };

  // Parses every string; throws StoreError(InvalidArgument) naming the bad filter and position.
  static Filter parseAll(const std::vector<std::string>& filters);
  static Filter parse(const std::string& filter);

  bool match(const FieldLookup& lookup) const;
  bool matchesEverything() const { return alternatives_.empty(); }

 private:
  // OR of ANDs.
  std::vector<std::vector<Selector>> alternatives_;
};

// Helper for adaptors: joins the rest of a "labels.<k>" path the way containerd does and returns
// the value only when it is non-empty.
std::optional<std::string> lookupLabel(
    const std::vector<std::string>& path, size_t from,
    const std::function<std::optional<std::string>(const std::string&)>& get);

}  // namespace snapimport::store
