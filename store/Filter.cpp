#include "Filter.h"

#include <cctype>

#include "StoreError.h"

namespace snapimport::store {
namespace {

class FilterParser {
 public:
  explicit FilterParser(const std::string& input) : in_(input) {}

  std::vector<Filter::Selector> parse() {
    std::vector<Filter::Selector> all;
    skipSpace();
    if (pos_ >= in_.size()) error("filter must contain at least one selector");
    all.push_back(selector());
    for (;;) {
      skipSpace();
      if (pos_ >= in_.size()) break;
      if (in_[pos_] != ',') error("expected ',' or end of filter");
      ++pos_;
      all.push_back(selector());
    }
    return all;
  }

 private:
  [[noreturn]] void error(const std::string& why) {
    fail(ErrorClass::InvalidArgument,
         "invalid filter \"" + in_ + "\" at position " + std::to_string(pos_) + ": " + why);
  }

  void skipSpace() {
    while (pos_ < in_.size() && std::isspace(static_cast<unsigned char>(in_[pos_]))) ++pos_;
  }

  static bool isFieldChar(char c) {
    return c == '_' || std::isalnum(static_cast<unsigned char>(c));
  }
  static bool isQuote(char c) { return c == '"' || c == '/' || c == '|'; }

  Filter::Selector selector() {
    Filter::Selector s;
    s.fieldpath = fieldpath();
    skipSpace();
    if (pos_ >= in_.size() || in_[pos_] == ',') {
      s.op = Filter::Op::Present;
      return s;
    }
    std::string op = in_.substr(pos_, 2);
    if (op == "==") {
      s.op = Filter::Op::Equal;
    } else if (op == "!=") {
      s.op = Filter::Op::NotEqual;
    } else if (op == "~=") {
      s.op = Filter::Op::Matches;
    } else {
      error("expected an operator (==, != or ~=)");
    }
    pos_ += 2;
    skipSpace();
    s.value = value();
    if (s.op == Filter::Op::Matches) {
      try {
        s.regex.emplace(s.value, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        error("bad regular expression \"" + s.value + "\": " + e.what());
      }
    }
    return s;
  }

  std::vector<std::string> fieldpath() {
    std::vector<std::string> path;
    for (;;) {
      skipSpace();
      if (pos_ < in_.size() && isQuote(in_[pos_])) {
        path.push_back(quoted());
      } else {
        size_t start = pos_;
        while (pos_ < in_.size() && isFieldChar(in_[pos_])) ++pos_;
        if (start == pos_) error("expected a field name");
        path.push_back(in_.substr(start, pos_ - start));
      }
      if (pos_ < in_.size() && in_[pos_] == '.') {
        ++pos_;
        continue;
      }
      return path;
    }
  }

  std::string value() {
    if (pos_ < in_.size() && isQuote(in_[pos_])) return quoted();
    size_t start = pos_;
    while (pos_ < in_.size() && in_[pos_] != ',' &&
           !std::isspace(static_cast<unsigned char>(in_[pos_]))) {
      ++pos_;
    }
    if (start == pos_) error("expected a value");
    return in_.substr(start, pos_ - start);
  }

  // "..." takes Go-style escapes; /.../ and |...| only escape their own delimiter.
  std::string quoted() {
    char q = in_[pos_++];
    std::string out;
    while (pos_ < in_.size()) {
      char c = in_[pos_++];
      if (c == q) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= in_.size()) break;
      char e = in_[pos_++];
      if (q != '"') {
        if (e != q) out += '\\';
        out += e;
        continue;
      }
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
          out += '\\';
          break;
        case '"':
          out += '"';
          break;
        case '\'':
          out += '\'';
          break;
        default:
          error(std::string("unknown escape \\") + e + " in quoted string");
      }
    }
    error("unterminated quoted string");
  }

  const std::string& in_;
  size_t pos_ = 0;
};

bool matchSelector(const Filter::Selector& s, const FieldLookup& lookup) {
  std::optional<std::string> v = lookup(s.fieldpath);
  switch (s.op) {
    case Filter::Op::Present:
      return v.has_value();
    case Filter::Op::Equal:
      return v.has_value() && *v == s.value;
    case Filter::Op::NotEqual:
      // containerd compares the (possibly empty) value, so a missing field is "not equal".
      return v.value_or("") != s.value;
    case Filter::Op::Matches:
      return v.has_value() && std::regex_search(*v, *s.regex);
  }
  return false;
}

}  // namespace

Filter Filter::parse(const std::string& filter) {
  Filter f;
  f.alternatives_.push_back(FilterParser(filter).parse());
  return f;
}

Filter Filter::parseAll(const std::vector<std::string>& filters) {
  Filter f;
  for (const auto& s : filters) {
    f.alternatives_.push_back(FilterParser(s).parse());
  }
  return f;
}

bool Filter::match(const FieldLookup& lookup) const {
  if (alternatives_.empty()) return true;
  for (const auto& all : alternatives_) {
    bool ok = true;
    for (const auto& s : all) {
      if (!matchSelector(s, lookup)) {
        ok = false;
        break;
      }
    }
    if (ok) return true;
  }
  return false;
}

std::optional<std::string> lookupLabel(
    const std::vector<std::string>& path, size_t from,
    const std::function<std::optional<std::string>(const std::string&)>& get) {
  if (path.size() <= from) return std::nullopt;
  std::string key = path[from];
  for (size_t i = from + 1; i < path.size(); ++i) key += "." + path[i];
  auto v = get(key);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

}  // namespace snapimport::store
