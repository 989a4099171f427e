#pragma once
// The little tar support docker-archive needs: an index of a tar file's regular entries (read
// side: ustar, GNU long names, pax path) and a ustar writer. Layer contents are never parsed here.
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace snapimport::registry {

struct TarEntry {
  uint64_t offset = 0;  // of the data in the archive file
  uint64_t size = 0;
};

// Regular files of an archive by cleaned name ("./a/b" -> "a/b"). Throws Error(Invalid).
std::map<std::string, TarEntry> indexTar(const std::string& path);

class TarWriter {
 public:
  explicit TarWriter(const std::string& path);  // creates/truncates
  ~TarWriter();
  void addFile(const std::string& name, const std::string& data);
  void addFileFrom(const std::string& name, const std::string& sourcePath);
  void finish();  // two zero blocks, flush, fsync

 private:
  void header(const std::string& name, uint64_t size);
  void pad(uint64_t size);
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace snapimport::registry
