#pragma once
// Applies tar entries to an overlay diff directory with dirfd-relative system calls
// (registry-and-security.md §4 "Overlayfs representation" and §5 rows 1-8).
//
// Rules, in the order they matter:
// - every name is cleaned lexically and resolved inside the root (SecureRoot);
// - whatever exists at a name is unlinked (directories removed recursively) before the new entry
//   is created with O_CREAT|O_EXCL|O_NOFOLLOW, mkdirat, symlinkat, mknodat or linkat; only a
//   directory over a directory keeps the existing inode and takes the new attributes;
// - metadata goes through fds (fchown, fchmod, fsetxattr, futimens) or *at calls with
//   AT_SYMLINK_NOFOLLOW; never through a path that could be a symlink;
// - directory times are set in a final pass, re-resolved and re-checked to still be directories.
#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "unpack/DirectFileWriter.h"
#include "unpack/SecureRoot.h"
#include "unpack/Unpacker.h"

namespace snapimport::unpack {

class LayerWriter {
 public:
  // `readError` turns a failed libarchive data read into the right exception (it may carry an
  // exception captured in the read callback).
  using ReadErrorFn = void (*)(struct archive*, void* ctx, const std::string& what);

  LayerWriter(SecureRoot& root, const Options& opts, ReadErrorFn readError, void* readErrorCtx);

  // Applies one entry whose header has just been read; reads its data from `a`.
  void apply(struct archive* a, struct archive_entry* e);
  // After the last entry: directory times, in tar order (so a duplicate's last header wins).
  void finish();
  // After a failure: removes everything written, including an opaque marker on the root.
  void rollback() noexcept;

  uint64_t entries() const { return entries_; }
  uint64_t directBytes() const { return direct_.directBytes(); }
  std::vector<std::string> implicitDirs() const { return {implicit_.begin(), implicit_.end()}; }

 private:
  enum class Existing { None, Dir, Whiteout, Other };
  struct DirTime {
    std::string path;
    struct timespec times[2];
  };

  void applyEntry(struct archive* a, struct archive_entry* e, const std::string& name);
  std::shared_ptr<Fd> parentDir(std::string_view parent);
  // nullptr when the parent is (through this layer) not a directory: the whiteout is moot.
  std::shared_ptr<Fd> whiteoutParentDir(std::string_view parent);
  Existing clearLeaf(int parent, std::string_view path, std::string_view leaf, bool keepDir);
  // Runs `create` (an O_EXCL-style call that fails with EEXIST rather than following anything);
  // only if the name is taken does it clear the leaf and try once more. Most names in a layer are
  // new, so this saves the stat a clear-then-create would cost on every entry.
  template <class Create>
  int createFresh(int parent, std::string_view path, std::string_view leaf, Create create);
  void writeWhiteout(std::string_view parent, std::string_view target, struct archive_entry* e);
  void setOpaque(int dirfd, std::string_view path);
  void writeDirectory(int parent, const std::string& path, std::string_view leaf,
                      struct archive_entry* e);
  void writeRegular(struct archive* a, int parent, std::string_view path, std::string_view leaf,
                    struct archive_entry* e);
  void writeSymlink(int parent, std::string_view path, std::string_view leaf,
                    struct archive_entry* e);
  void writeHardlink(int parent, std::string_view path, std::string_view leaf,
                     struct archive_entry* e);
  void writeSpecial(int parent, std::string_view path, std::string_view leaf,
                    struct archive_entry* e);
  // Metadata for inodes we hold an fd to (regular files, directories).
  void applyFdMetadata(int fd, std::string_view path, struct archive_entry* e, bool times);
  // Metadata for inodes we must not open (symlinks, devices, fifos): *at calls, never following.
  void applyAtMetadata(int parent, std::string_view path, std::string_view leaf,
                       struct archive_entry* e, bool chmod);
  void applyXattrs(int fd, int parent, std::string_view leaf, std::string_view path,
                   struct archive_entry* e);

  SecureRoot& root_;
  const Options& opts_;
  ReadErrorFn readError_;
  void* readErrorCtx_;
  uint64_t entries_ = 0;
  std::set<std::string> implicit_;
  std::vector<DirTime> dirTimes_;
  std::vector<std::string> created_;  // scratch for SecureRoot::dir
  bool rootOpaque_ = false;
  DirectFileWriter direct_;
};

}  // namespace snapimport::unpack
