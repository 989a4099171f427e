#include "registry/Tar.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "registry/Error.h"

namespace snapimport::registry {
namespace {

uint64_t parseNumber(const char* p, size_t n) {
  if (static_cast<unsigned char>(p[0]) & 0x80) {  // base-256
    uint64_t v = static_cast<unsigned char>(p[0]) & 0x7f;
    for (size_t i = 1; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n && p[i]; ++i) {
    if (p[i] == ' ') continue;
    if (p[i] < '0' || p[i] > '7') break;
    v = v * 8 + (p[i] - '0');
  }
  return v;
}

std::string field(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

std::string clean(std::string name) {
  while (name.starts_with("./")) name = name.substr(2);
  while (name.starts_with("/")) name = name.substr(1);
  return name;
}

}  // namespace

std::map<std::string, TarEntry> indexTar(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(ErrorKind::Io, "cannot open archive " + path + ": " + std::strerror(errno));
  std::map<std::string, TarEntry> out;
  char h[512];
  uint64_t pos = 0;
  std::string longName;
  try {
    while (true) {
      if (std::fread(h, 1, 512, f) != 512) break;
      pos += 512;
      if (std::all_of(h, h + 512, [](char c) { return c == 0; })) break;
      uint64_t size = parseNumber(h + 124, 12);
      char type = h[156];
      std::string name = field(h, 100);
      if (std::memcmp(h + 257, "ustar", 5) == 0 && h[345]) name = field(h + 345, 155) + "/" + name;
      uint64_t padded = (size + 511) / 512 * 512;
      if (type == 'L' || type == 'x') {
        if (size > (1 << 20))
          throw Error(ErrorKind::Invalid, "archive " + path + ": oversize header entry");
        std::string data(size, '\0');
        if (std::fread(data.data(), 1, size, f) != size)
          throw Error(ErrorKind::Invalid, "archive " + path + " is truncated");
        if (type == 'L') {
          longName = data.c_str();
        } else {
          // pax records: "<len> key=value\n"
          size_t i = 0;
          while (i < data.size()) {
            size_t sp = data.find(' ', i);
            if (sp == std::string::npos) break;
            size_t len = std::stoul(data.substr(i, sp - i));
            if (len == 0 || i + len > data.size()) break;
            std::string rec = data.substr(sp + 1, len - (sp - i) - 2);
            if (rec.starts_with("path=")) longName = rec.substr(5);
            i += len;
          }
        }
        std::fseek(f, static_cast<long>(pos + padded), SEEK_SET);
        pos += padded;
        continue;
      }
      if (!longName.empty()) {
        name = longName;
        longName.clear();
      }
      if (type == '0' || type == '\0') out[clean(name)] = TarEntry{pos, size};
      pos += padded;
      if (std::fseek(f, static_cast<long>(pos), SEEK_SET) != 0) break;
    }
  } catch (...) {
    std::fclose(f);
    throw;
  }
  std::fclose(f);
  if (out.empty()) throw Error(ErrorKind::Invalid, path + " is not a tar archive (or is empty)");
  return out;
}

TarWriter::TarWriter(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "wb");
  if (!f_) throw Error(ErrorKind::Io, "cannot create " + path + ": " + std::strerror(errno));
}

TarWriter::~TarWriter() {
  if (f_) std::fclose(f_);
}

void TarWriter::header(const std::string& name, uint64_t size) {
  if (name.size() > 99) throw Error(ErrorKind::Invalid, "tar entry name too long: " + name);
  char h[512] = {};
  std::memcpy(h, name.data(), name.size());
  std::snprintf(h + 100, 8, "%07o", 0644);
  std::snprintf(h + 108, 8, "%07o", 0);
  std::snprintf(h + 116, 8, "%07o", 0);
  if (size < 077777777777ull) {
    std::snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(size));
  } else {
    h[124] = static_cast<char>(0x80);
    for (int i = 11; i >= 4; --i) h[124 + i] = static_cast<char>((size >> (8 * (11 - i))) & 0xff);
  }
  std::snprintf(h + 136, 12, "%011o", 0);
  h[156] = '0';
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  if (std::fwrite(h, 1, 512, f_) != 512) throw Error(ErrorKind::Io, "writing " + path_ + " failed");
}

void TarWriter::pad(uint64_t size) {
  static const char zeros[512] = {};
  size_t rem = size % 512;
  if (rem && std::fwrite(zeros, 1, 512 - rem, f_) != 512 - rem)
    throw Error(ErrorKind::Io, "writing " + path_ + " failed");
}

void TarWriter::addFile(const std::string& name, const std::string& data) {
  header(name, data.size());
  if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f_) != data.size()) {
    throw Error(ErrorKind::Io, "writing " + path_ + " failed");
  }
  pad(data.size());
}

void TarWriter::addFileFrom(const std::string& name, const std::string& sourcePath) {
  std::FILE* in = std::fopen(sourcePath.c_str(), "rb");
  if (!in) throw Error(ErrorKind::Io, "cannot open " + sourcePath);
  std::fseek(in, 0, SEEK_END);
  uint64_t size = static_cast<uint64_t>(std::ftell(in));
  std::fseek(in, 0, SEEK_SET);
  header(name, size);
  std::vector<char> buf(1 << 20);
  uint64_t copied = 0;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), in)) {
    if (std::fwrite(buf.data(), 1, n, f_) != n) {
      std::fclose(in);
      throw Error(ErrorKind::Io, "writing " + path_ + " failed");
    }
    copied += n;
  }
  std::fclose(in);
  if (copied != size) throw Error(ErrorKind::Io, sourcePath + " changed while being archived");
  pad(size);
}

void TarWriter::finish() {
  static const char zeros[1024] = {};
  std::fwrite(zeros, 1, 1024, f_);
  if (std::fflush(f_) != 0 || fsync(fileno(f_)) != 0)
    throw Error(ErrorKind::Io, "writing " + path_ + " failed");
  std::fclose(f_);
  f_ = nullptr;
}

}  // namespace snapimport::registry
