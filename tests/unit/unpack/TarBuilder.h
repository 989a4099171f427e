#pragma once
// Builds tar streams byte by byte, including the malformed ones a real tar tool refuses to
// write (names with "..", links out of the root, whiteouts named "..", huge ids).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

namespace snapimport::testing {

struct TarMeta {
  unsigned mode = 0644;
  uint64_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
  unsigned devMajor = 0, devMinor = 0;
  std::map<std::string, std::string> pax;  // extra PAX records (SCHILY.xattr.*, path, ...)

  static TarMeta withMode(unsigned m) {
    TarMeta t;
    t.mode = m;
    return t;
  }
};

class TarBuilder {
 public:
  using Meta = TarMeta;

  TarBuilder& file(const std::string& name, const std::string& data, Meta m = {}) {
    return entry(name, '0', data, "", m);
  }
  TarBuilder& dir(const std::string& name, Meta m = {}) {
    if (m.mode == 0644) m.mode = 0755;
    return entry(name, '5', "", "", m);
  }
  TarBuilder& symlink(const std::string& name, const std::string& target, Meta m = {}) {
    if (m.mode == 0644) m.mode = 0777;
    return entry(name, '2', "", target, m);
  }
  TarBuilder& hardlink(const std::string& name, const std::string& target, Meta m = {}) {
    return entry(name, '1', "", target, m);
  }
  TarBuilder& chr(const std::string& name, unsigned major, unsigned minor, Meta m = {}) {
    m.devMajor = major;
    m.devMinor = minor;
    return entry(name, '3', "", "", m);
  }
  TarBuilder& fifo(const std::string& name, Meta m = {}) { return entry(name, '6', "", "", m); }

  // Any entry; names or link targets that do not fit ustar go into a PAX header.
  TarBuilder& entry(const std::string& name, char type, const std::string& data,
                    const std::string& link, Meta m) {
    std::map<std::string, std::string> pax = m.pax;
    if (name.size() > 99) pax["path"] = name;
    if (link.size() > 99) pax["linkpath"] = link;
    if (m.uid > 07777777) pax["uid"] = std::to_string(m.uid);
    if (m.gid > 07777777) pax["gid"] = std::to_string(m.gid);
    if (!pax.empty()) {
      std::string body;
      for (const auto& [k, v] : pax) body += record(k, v);
      header("PaxHeaders/x", 'x', body.size(), "", Meta{});
      out_ += body;
      pad();
    }
    header(name.substr(0, 99), type, data.size(), link.substr(0, 99), m);
    out_ += data;
    pad();
    return *this;
  }
  // Raw bytes (for hand-made headers).
  TarBuilder& raw(const std::string& bytes) {
    out_ += bytes;
    return *this;
  }
  std::string finish() {
    out_.append(1024, '\0');
    return out_;
  }

  // One PAX record "<len> key=value\n", where len counts itself.
  static std::string record(const std::string& k, const std::string& v) {
    size_t base = k.size() + v.size() + 3;
    size_t len = base + std::to_string(base).size();
    if (std::to_string(len).size() + base != len) ++len;
    return std::to_string(len) + " " + k + "=" + v + "\n";
  }

 private:
  void header(const std::string& name, char type, uint64_t size, const std::string& link,
              const Meta& m) {
    char h[512] = {};
    std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
    octal(h + 100, 8, m.mode);
    octal(h + 108, 8, m.uid > 07777777 ? 0 : m.uid);
    octal(h + 116, 8, m.gid > 07777777 ? 0 : m.gid);
    octal(h + 124, 12, size);
    octal(h + 136, 12, static_cast<uint64_t>(m.mtime));
    h[156] = type;
    std::memcpy(h + 157, link.data(), std::min<size_t>(link.size(), 100));
    std::memcpy(h + 257,
                "ustar\0"
                "00",
                8);
    octal(h + 329, 8, m.devMajor);
    octal(h + 337, 8, m.devMinor);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    octal(h + 148, 7, sum);
    out_.append(h, 512);
  }
  // width-1 octal digits and a NUL; values that do not fit are truncated on purpose (the
  // corpus wants such headers too).
  static void octal(char* field, size_t width, uint64_t v) {
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0; v >>= 3) field[i] = static_cast<char>('0' + (v & 7));
  }
  void pad() { out_.append((512 - out_.size() % 512) % 512, '\0'); }

  std::string out_;
};

}  // namespace snapimport::testing
