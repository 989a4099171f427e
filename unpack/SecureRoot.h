#pragma once
// A directory tree that entries are written into and never out of (registry-and-security.md §5
// rows 1, 2 and 14). Every path is resolved inside the root: with openat2(RESOLVE_IN_ROOT |
// RESOLVE_NO_MAGICLINKS) when the kernel has it, otherwise with a component-by-component O_NOFOLLOW
// walk that interprets symlinks itself, treating the root as "/". Symlinks inside the layer are
// followed the way containerd and umoci follow them, but they can never lead outside.
#include <filesystem>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unpack/Fd.h"

namespace snapimport::unpack {

class SecureRoot {
 public:
  // Opens `dir` (which must be a directory, not a symlink).
  explicit SecureRoot(const std::filesystem::path& dir);

  int fd() const { return root_.get(); }
  const std::filesystem::path& path() const { return path_; }

  // The directory at the cleaned root-relative path `rel` ("" = root), opened O_RDONLY. Missing
  // directories are created 0755 when `create`; the resolved path of each one created is appended
  // to `created`. Results are cached; the shared_ptr keeps the fd alive across cache evictions.
  // Throws UnpackError when a component is not a directory or cannot be resolved.
  std::shared_ptr<Fd> dir(std::string_view rel, bool create, std::vector<std::string>* created);
  // Like dir(), but returns nullptr with the errno in `err` instead of throwing.
  std::shared_ptr<Fd> tryDir(std::string_view rel, bool create, std::vector<std::string>* created,
                             int& err);
  // Like dir(), but returns nullptr instead of throwing when something on the way is missing or
  // is not a directory.
  std::shared_ptr<Fd> findDir(std::string_view rel);

  // `rel` was removed or replaced by something else: forget cached directories at or below it.
  void forget(std::string_view rel);
  // A directory was removed: any cached fd may now name a deleted directory.
  void forgetAll();

  // Removes `name` in `parent` whatever it is; directories recursively, with a bounded number of
  // fds and linear time. Never follows symlinks.
  static void removeAt(int parent, const std::string& name);
  // Removes everything inside the directory `fd` (the directory itself stays).
  static void emptyDir(int fd);
  // True when the directory has no entries besides "." and "..".
  static bool isEmptyDir(int fd);
  // Whether this kernel has openat2 (tests use it to cover the fallback walk too).
  bool usesOpenat2() const { return openat2_; }
  void disableOpenat2() { openat2_ = false; }

 private:
  // -1 with errno set on failure.
  int openat2Dir(std::string_view rel);
  Fd walk(std::string_view rel, bool create, std::vector<std::string>* created, int* err);
  void remember(const std::string& rel, std::shared_ptr<Fd> fd);

  std::filesystem::path path_;
  Fd root_;
  bool openat2_ = true;
  // Small LRU: tar entries arrive grouped by directory, so a few dozen slots hit almost always.
  static constexpr size_t kCacheSize = 64;
  std::list<std::pair<std::string, std::shared_ptr<Fd>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
};

}  // namespace snapimport::unpack
