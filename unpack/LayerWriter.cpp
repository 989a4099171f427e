#include "unpack/LayerWriter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/Log.h"
#include "unpack/EntryPath.h"
#include "unpack/Whiteout.h"
#include "unpack/XattrPolicy.h"

namespace snapimport::unpack {
namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW;
// uid/gid 2^32-1 is (uid_t)-1, "no change" to chown; anything above wraps (CVE-2024-40635).
constexpr int64_t kMaxId = 0xfffffffeLL;
// Linux dev_t: 12-bit major, 20-bit minor as exposed by tar's 8-digit octal fields.
constexpr uint64_t kMaxMajor = 0xfff, kMaxMinor = 0xfffff;
// One direct write per MiB: half that doubles the system time of the writes, four times as much
// saves nothing more (dd on ext4 over virtio), and each unpack holds one such buffer.
constexpr size_t kDirectChunkBytes = 1 << 20;

std::string sysError(std::string_view what, std::string_view path, int err) {
  return std::string(what) + " \"" + std::string(path) + "\": " + std::strerror(err);
}

[[noreturn]] void throwSys(std::string_view what, std::string_view path) {
  throw UnpackError(sysError(what, path, errno));
}

std::string stringOf(const char* mbs, const char* utf8) {
  // libarchive returns NULL for the locale form when a UTF-8 PAX name does not convert to the
  // current locale; names are bytes on Linux, so the UTF-8 bytes are what we write.
  if (mbs) return mbs;
  if (utf8) return utf8;
  return {};
}

std::string entryName(struct archive_entry* e) {
  std::string s = stringOf(archive_entry_pathname(e), archive_entry_pathname_utf8(e));
  if (s.empty()) throw UnpackError("entry has no name");
  return s;
}

bool isWhiteoutDevice(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// The mode a new file or directory is created with. Plain permission bits are given at creation, so
// that applyFdMetadata usually finds nothing left to change; setuid, setgid and sticky must wait
// until after the chown (which would clear them), so such inodes start private.
mode_t createMode(struct archive_entry* e) {
  mode_t perm = archive_entry_perm(e) & 07777;
  return (perm & 07000) ? 0600 : perm;
}

void entryTimes(struct archive_entry* e, struct timespec times[2]) {
  times[1] = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
  times[0] = archive_entry_atime_is_set(e)
                 ? timespec{archive_entry_atime(e), archive_entry_atime_nsec(e)}
                 : times[1];
}

}  // namespace

LayerWriter::LayerWriter(SecureRoot& root, const Options& opts, ReadErrorFn readError,
                         void* readErrorCtx)
    : root_(root),
      opts_(opts),
      readError_(readError),
      readErrorCtx_(readErrorCtx),
      direct_(kDirectChunkBytes) {}

void LayerWriter::apply(struct archive* a, struct archive_entry* e) {
  ++entries_;
  if (entries_ > opts_.limits.maxEntries) {
    throw LimitExceeded("layer has more than " + std::to_string(opts_.limits.maxEntries) +
                        " entries");
  }
  if (opts_.cancel && opts_.cancel->load(std::memory_order_relaxed)) {
    throw Cancelled("unpack cancelled at entry " + std::to_string(entries_));
  }
  std::string name = entryName(e);
  // Names can be 4 KiB of "a/a/a/..."; keep error messages readable.
  std::string shown = name.size() <= 160
                          ? name
                          : name.substr(0, 120) + "...(" + std::to_string(name.size()) + " bytes)";
  std::string prefix = "entry " + std::to_string(entries_) + " \"" + shown + "\": ";
  try {
    applyEntry(a, e, name);
  } catch (const Cancelled&) {
    throw;
  } catch (const LimitExceeded& ex) {
    throw LimitExceeded(prefix + ex.what());
  } catch (const UnpackError& ex) {
    throw UnpackError(prefix + ex.what());
  }
}

void LayerWriter::applyEntry(struct archive* a, struct archive_entry* e, const std::string& name) {
  const Limits& lim = opts_.limits;
  if (name.size() > lim.maxPathBytes) {
    throw LimitExceeded("name of " + std::to_string(name.size()) + " bytes exceeds the limit of " +
                        std::to_string(lim.maxPathBytes));
  }
  std::string link = stringOf(archive_entry_hardlink(e), archive_entry_hardlink_utf8(e));
  bool hardlink = !link.empty();
  if (!hardlink) link = stringOf(archive_entry_symlink(e), archive_entry_symlink_utf8(e));
  if (link.size() > lim.maxPathBytes) {
    throw LimitExceeded("link target of " + std::to_string(link.size()) +
                        " bytes exceeds the limit of " + std::to_string(lim.maxPathBytes));
  }
  uint64_t headerBytes = name.size() + link.size();
  {
    const char* xn;
    const void* xv;
    size_t xs;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &xn, &xv, &xs) == ARCHIVE_OK) headerBytes += strlen(xn) + xs;
  }
  if (headerBytes > lim.maxHeaderBytes) {
    throw LimitExceeded("header metadata of " + std::to_string(headerBytes) +
                        " bytes exceeds the limit of " + std::to_string(lim.maxHeaderBytes));
  }
  int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  if (uid < 0 || uid > kMaxId || gid < 0 || gid > kMaxId) {
    throw UnpackError("uid " + std::to_string(uid) + " / gid " + std::to_string(gid) +
                      " out of range");
  }

  std::string path = cleanEntryPath(name);
  if (path.empty()) {
    // The root belongs to the snapshotter (containerd drops such entries too).
    log::debug("unpack: entry resolves to the layer root, ignored", {{"name", name}});
    return;
  }
  auto [parent, leaf] = splitParent(path);
  for (size_t pos = 0; pos < parent.size();) {
    size_t slash = parent.find('/', pos);
    if (slash == std::string_view::npos) slash = parent.size();
    if (Whiteout::hasPrefix(parent.substr(pos, slash - pos))) {
      throw UnpackError("whiteout name used as a directory");
    }
    pos = slash + 1;
  }

  Whiteout wh = Whiteout::classify(leaf);
  switch (wh.kind) {
    case Whiteout::Kind::Opaque: {
      auto dir = whiteoutParentDir(parent);
      if (dir) setOpaque(dir->get(), parent);
      return;
    }
    case Whiteout::Kind::Remove:
      writeWhiteout(parent, wh.target, e);
      return;
    case Whiteout::Kind::Meta:
      log::debug("unpack: aufs metadata entry ignored", {{"name", name}});
      return;
    case Whiteout::Kind::None:
      break;
  }

  if (hardlink) {
    auto dir = parentDir(parent);
    writeHardlink(dir->get(), path, leaf, e);
    return;
  }
  auto dir = parentDir(parent);
  switch (archive_entry_filetype(e)) {
    case AE_IFREG:
      writeRegular(a, dir->get(), path, leaf, e);
      break;
    case AE_IFDIR:
      writeDirectory(dir->get(), path, leaf, e);
      break;
    case AE_IFLNK:
      writeSymlink(dir->get(), path, leaf, e);
      break;
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
      writeSpecial(dir->get(), path, leaf, e);
      break;
    case AE_IFSOCK:
      log::debug("unpack: socket entry ignored", {{"name", name}});
      break;
    default:
      throw UnpackError("unsupported entry type " + std::to_string(archive_entry_filetype(e)));
  }
}

std::shared_ptr<Fd> LayerWriter::whiteoutParentDir(std::string_view parent) {
  created_.clear();
  int err = 0;
  auto dir = root_.tryDir(parent, true, &created_, err);
  for (auto& c : created_) implicit_.insert(std::move(c));
  if (!dir && err == ENOTDIR) {
    // This layer already replaced the parent with a non-directory, which hides everything below
    // it; umoci writes such whiteouts after turning a directory into a file.
    log::debug("unpack: whiteout below a non-directory ignored", {{"dir", std::string(parent)}});
    return nullptr;
  }
  if (!dir) {
    throw UnpackError(sysError("cannot resolve whiteout directory", parent, err));
  }
  return dir;
}

std::shared_ptr<Fd> LayerWriter::parentDir(std::string_view parent) {
  created_.clear();
  auto dir = root_.dir(parent, true, &created_);
  for (auto& c : created_) implicit_.insert(std::move(c));
  return dir;
}

LayerWriter::Existing LayerWriter::clearLeaf(int parent, std::string_view path,
                                             std::string_view leaf, bool keepDir) {
  std::string l(leaf);
  struct stat st {};
  if (::fstatat(parent, l.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Existing::None;
    throwSys("cannot inspect existing", path);
  }
  if (S_ISDIR(st.st_mode)) {
    if (keepDir) return Existing::Dir;
    SecureRoot::removeAt(parent, l);
    root_.forgetAll();
    return Existing::Dir;
  }
  if (::unlinkat(parent, l.c_str(), 0) != 0) throwSys("cannot unlink existing", path);
  root_.forget(path);  // it may have been a symlink that cached directories were reached through
  return isWhiteoutDevice(st) ? Existing::Whiteout : Existing::Other;
}

template <class Create>
int LayerWriter::createFresh(int parent, std::string_view path, std::string_view leaf,
                             Create create) {
  int rc = create();
  if (rc < 0 && errno == EEXIST) {
    clearLeaf(parent, path, leaf, false);
    rc = create();
  }
  return rc;
}

void LayerWriter::setOpaque(int dirfd, std::string_view path) {
  if (::fsetxattr(dirfd, opaqueXattr(opts_.userxattr), "y", 1, 0) != 0) {
    throwSys(std::string("cannot set ") + opaqueXattr(opts_.userxattr) + " on", path);
  }
  if (path.empty()) rootOpaque_ = true;
}

void LayerWriter::writeWhiteout(std::string_view parent, std::string_view target,
                                struct archive_entry* e) {
  auto dir = whiteoutParentDir(parent);
  if (!dir) return;
  std::string t(target);
  std::string path = parent.empty() ? t : std::string(parent) + "/" + t;
  struct stat st {};
  if (::fstatat(dir->get(), t.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    // Whiteouts hide lower layers only. An entry of this layer at the same name already hides
    // the lower one; a directory of this layer must additionally stop merging with it.
    if (S_ISDIR(st.st_mode)) {
      Fd d(::openat(dir->get(), t.c_str(), kDirFlags));
      if (!d) throwSys("cannot open directory", path);
      setOpaque(d.get(), path);
    }
    return;
  }
  if (errno != ENOENT) throwSys("cannot inspect whiteout target", path);
  if (::mknodat(dir->get(), t.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
    throwSys("cannot create whiteout device", path);
  }
  if (::fchownat(dir->get(), t.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
                 static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0) {
    throwSys("cannot chown whiteout", path);
  }
}

void LayerWriter::writeDirectory(int parent, const std::string& path, std::string_view leaf,
                                 struct archive_entry* e) {
  std::string l(leaf);
  Existing existing = Existing::None;
  const mode_t mode = createMode(e);
  if (::mkdirat(parent, l.c_str(), mode) != 0) {
    if (errno != EEXIST) throwSys("cannot create directory", path);
    existing = clearLeaf(parent, path, leaf, true);
    if (existing != Existing::Dir && ::mkdirat(parent, l.c_str(), mode) != 0) {
      throwSys("cannot create directory", path);
    }
  }
  Fd d(::openat(parent, l.c_str(), kDirFlags));
  if (!d) throwSys("cannot open directory", path);
  // A whiteout of this layer followed by the directory: the lower one is gone, so the new one
  // must not merge with it.
  if (existing == Existing::Whiteout) setOpaque(d.get(), path);
  applyFdMetadata(d.get(), path, e, false);
  DirTime dt{path, {}};
  entryTimes(e, dt.times);
  dirTimes_.push_back(std::move(dt));
  implicit_.erase(path);
}

void LayerWriter::writeRegular(struct archive* a, int parent, std::string_view path,
                               std::string_view leaf, struct archive_entry* e) {
  if (archive_entry_sparse_count(e) > 0) {
    throw UnpackError("sparse files are refused (image-spec: sparse files SHOULD NOT be used)");
  }
  std::string l(leaf);
  const mode_t mode = createMode(e);
  Fd f(createFresh(parent, path, leaf, [&] {
    // A new file opens for writing whatever its mode; nobody else can reach the layer directory.
    return ::openat(parent, l.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  }));
  if (!f) throwSys("cannot create file", path);
  // Large files skip the page cache (DirectFileWriter says why); small ones would pay a device
  // round trip per file for it.
  const bool direct = opts_.directWriteMinBytes > 0 &&
                      archive_entry_size(e) >= static_cast<int64_t>(opts_.directWriteMinBytes) &&
                      direct_.begin(f.get(), std::string(path));
  int64_t expected = 0;
  for (;;) {
    const void* buf;
    size_t size;
    la_int64_t offset;
    int r = archive_read_data_block(a, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_OK) {
      readError_(a, readErrorCtx_, "cannot read data of \"" + std::string(path) + "\"");
      throw UnpackError("cannot read file data");  // readError_ always throws
    }
    if (offset != expected) {
      // A hole: a PAX 1.0 GNU sparse map only shows up here.
      throw UnpackError("sparse files are refused (hole at offset " + std::to_string(expected) +
                        ")");
    }
    expected += static_cast<int64_t>(size);
    if (direct) {
      direct_.append(buf, size);
    } else {
      writeAll(f.get(), static_cast<const char*>(buf), size, path);
    }
  }
  if (direct) direct_.finish();
  applyFdMetadata(f.get(), path, e, true);
}

void LayerWriter::writeSymlink(int parent, std::string_view path, std::string_view leaf,
                               struct archive_entry* e) {
  std::string target = stringOf(archive_entry_symlink(e), archive_entry_symlink_utf8(e));
  if (target.empty()) throw UnpackError("symlink with an empty target");
  std::string l(leaf);
  if (createFresh(parent, path, leaf,
                  [&] { return ::symlinkat(target.c_str(), parent, l.c_str()); }) != 0) {
    throwSys("cannot create symlink", path);
  }
  applyAtMetadata(parent, path, leaf, e, false);
}

void LayerWriter::writeHardlink(int parent, std::string_view path, std::string_view leaf,
                                struct archive_entry* e) {
  std::string raw = stringOf(archive_entry_hardlink(e), archive_entry_hardlink_utf8(e));
  std::string target = cleanEntryPath(raw);
  if (target.empty()) throw UnpackError("hardlink to the layer root");
  auto [tparent, tleaf] = splitParent(target);
  if (Whiteout::hasPrefix(tleaf)) throw UnpackError("hardlink to a whiteout name");
  // The target must be an entry of this layer: the diff dir started empty, so anything that
  // exists here came from this layer. Never a directory, never a whiteout device.
  auto tdir = root_.findDir(tparent);
  std::string tl(tleaf);
  struct stat tst {};
  if (!tdir || ::fstatat(tdir->get(), tl.c_str(), &tst, AT_SYMLINK_NOFOLLOW) != 0) {
    throw UnpackError("hardlink target \"" + target + "\" is not an earlier entry of this layer");
  }
  if (S_ISDIR(tst.st_mode)) throw UnpackError("hardlink target \"" + target + "\" is a directory");
  if (isWhiteoutDevice(tst)) throw UnpackError("hardlink target \"" + target + "\" is a whiteout");
  std::string l(leaf);
  struct stat st {};
  if (::fstatat(parent, l.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev &&
      st.st_ino == tst.st_ino) {
    return;  // already the same inode (a link to itself, or a repeated link entry)
  }
  clearLeaf(parent, path, leaf, false);
  // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, which stays inside.
  if (::linkat(tdir->get(), tl.c_str(), parent, l.c_str(), 0) != 0) {
    throw UnpackError(sysError("cannot link to \"" + target + "\" as", path, errno));
  }
  // Any payload of a link entry is ignored (libarchive #746): the inode's data and metadata come
  // from the target's own entry.
}

void LayerWriter::writeSpecial(int parent, std::string_view path, std::string_view leaf,
                               struct archive_entry* e) {
  mode_t type = archive_entry_filetype(e);
  dev_t dev = 0;
  if (type == AE_IFCHR || type == AE_IFBLK) {
    if (!opts_.allowDevices) throw UnpackError("device nodes are not allowed by policy");
    uint64_t major = archive_entry_rdevmajor(e), minor = archive_entry_rdevminor(e);
    if (major > kMaxMajor || minor > kMaxMinor) {
      throw UnpackError("device number " + std::to_string(major) + ":" + std::to_string(minor) +
                        " out of range");
    }
    dev = makedev(major, minor);
  }
  std::string l(leaf);
  if (createFresh(parent, path, leaf,
                  [&] { return ::mknodat(parent, l.c_str(), type | 0600, dev); }) != 0) {
    throwSys("cannot create node", path);
  }
  applyAtMetadata(parent, path, leaf, e, true);
}

void LayerWriter::applyFdMetadata(int fd, std::string_view path, struct archive_entry* e,
                                  bool times) {
  const uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
  const gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
  const mode_t perm = archive_entry_perm(e) & 07777;
  // Most entries are root's, created by root with their final permission bits (createMode), so
  // one fstat usually replaces a chown and a chmod: each of those dirties the inode and opens a
  // journal handle, and together they were 6.5 % of a small-file layer's CPU samples. The fstat,
  // not an assumption, decides: the umask, a setgid parent or a default ACL can all make the new
  // inode differ from what was asked for.
  struct stat st {};
  if (::fstat(fd, &st) != 0) throwSys("cannot inspect", path);
  bool chowned = false;
  // Order matters: chown clears setuid/setgid and security.capability, so it goes first.
  if (st.st_uid != uid || st.st_gid != gid) {
    if (::fchown(fd, uid, gid) != 0) throwSys("cannot chown", path);
    chowned = true;
  }
  if ((st.st_mode & 07777) != perm || (chowned && (perm & (S_ISUID | S_ISGID)))) {
    if (::fchmod(fd, perm) != 0) throwSys("cannot chmod", path);
  }
  applyXattrs(fd, -1, {}, path, e);
  if (times) {
    struct timespec ts[2];
    entryTimes(e, ts);
    if (::futimens(fd, ts) != 0) throwSys("cannot set times of", path);
  }
}

void LayerWriter::applyAtMetadata(int parent, std::string_view path, std::string_view leaf,
                                  struct archive_entry* e, bool chmod) {
  std::string l(leaf);
  if (::fchownat(parent, l.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
                 static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0) {
    throwSys("cannot chown", path);
  }
  // glibc implements AT_SYMLINK_NOFOLLOW with an O_PATH fd (or fchmodat2), refusing symlinks.
  if (chmod &&
      ::fchmodat(parent, l.c_str(), archive_entry_perm(e) & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
    throwSys("cannot chmod", path);
  }
  applyXattrs(-1, parent, leaf, path, e);
  struct timespec ts[2];
  entryTimes(e, ts);
  if (::utimensat(parent, l.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    throwSys("cannot set times of", path);
  }
}

void LayerWriter::applyXattrs(int fd, int parent, std::string_view leaf, std::string_view path,
                              struct archive_entry* e) {
  if (archive_entry_xattr_reset(e) == 0) return;
  const char* name;
  const void* value;
  size_t size;
  std::string procPath;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    std::string_view n(name);
    if (!isCopyableXattr(n)) {
      log::debug("unpack: xattr dropped", {{"path", std::string(path)}, {"xattr", std::string(n)}});
      continue;
    }
    int rc;
    if (fd >= 0) {
      rc = ::fsetxattr(fd, name, value, size, 0);
    } else {
      // No fd for symlinks and device nodes: the l* call on the leaf below our own directory fd
      // never follows the leaf, and /proc/self/fd/N pins the parent we already resolved.
      if (procPath.empty())
        procPath = "/proc/self/fd/" + std::to_string(parent) + "/" + std::string(leaf);
      rc = ::lsetxattr(procPath.c_str(), name, value, size, 0);
    }
    if (rc != 0) {
      int err = errno;
      // As containerd: user.* is not allowed on every inode type or file system; skip it there.
      if (err == ENOTSUP || (n.starts_with("user.") && err == EPERM)) continue;
      throw UnpackError(sysError("cannot set xattr " + std::string(n) + " on", path, err));
    }
  }
}

void LayerWriter::finish() {
  for (const auto& dt : dirTimes_) {
    auto [parent, leaf] = splitParent(dt.path);
    // Re-resolve and re-check: a later entry may have replaced the directory with a symlink
    // (CVE-2021-31566), in which case its times are no longer ours to set.
    auto pdir = root_.findDir(parent);
    if (!pdir) continue;
    Fd d(::openat(pdir->get(), std::string(leaf).c_str(), kDirFlags));
    if (!d) continue;
    if (::futimens(d.get(), dt.times) != 0) throwSys("cannot set times of directory", dt.path);
  }
  dirTimes_.clear();
}

void LayerWriter::rollback() noexcept {
  try {
    root_.forgetAll();
    SecureRoot::emptyDir(root_.fd());
    if (rootOpaque_) ::fremovexattr(root_.fd(), opaqueXattr(opts_.userxattr));
  } catch (const std::exception& ex) {
    log::warn("unpack: cannot remove partial layer",
              {{"dir", root_.path().string()}, {"error", ex.what()}});
  }
}

}  // namespace snapimport::unpack
