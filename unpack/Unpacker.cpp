#include "unpack/Unpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>

#include "common/Log.h"
#include "unpack/EntryPath.h"
#include "unpack/Fd.h"
#include "unpack/LayerStream.h"
#include "unpack/LayerWriter.h"
#include "unpack/MediaType.h"
#include "unpack/SecureRoot.h"
#include "unpack/Whiteout.h"
#include "unpack/XattrPolicy.h"

namespace snapimport::unpack {
namespace {

UnpackError syncError(const std::filesystem::path& dir, int err) {
  return UnpackError("syncfs on " + dir.string() + " failed: " + std::strerror(err));
}

// Glue between libarchive's C callbacks and LayerStream. Exceptions must not unwind through
// libarchive's C frames, so the callback parks them here and the caller rethrows.
struct ReadContext {
  LayerStream* stream;
  std::exception_ptr error;
};

la_ssize_t readCallback(struct archive* a, void* client, const void** buffer) {
  auto* ctx = static_cast<ReadContext*>(client);
  try {
    auto block = ctx->stream->next();
    *buffer = block.data();
    return static_cast<la_ssize_t>(block.size());
  } catch (...) {
    ctx->error = std::current_exception();
    archive_set_error(a, EIO, "layer stream failed");
    return -1;
  }
}

[[noreturn]] void throwArchiveError(struct archive* a, void* client, const std::string& what) {
  auto* ctx = static_cast<ReadContext*>(client);
  if (ctx->error) std::rethrow_exception(ctx->error);
  const char* msg = archive_error_string(a);
  throw UnpackError(what + ": " + (msg ? msg : "unknown tar error"));
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

Result unpackInto(LayerStream& stream, ReadContext& ctx, SecureRoot& root, const Options& opts,
                  LayerWriter& writer) {
  std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
  if (!a) throw UnpackError("cannot allocate a libarchive reader");
  // Tar only (ustar, pax, GNU, v7): decompression already happened in LayerStream, so no filter
  // is registered and libarchive can never pick one (or an external program) by itself. "empty"
  // accepts a zero-byte tar, as Go's archive/tar does.
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  if (archive_read_open(a.get(), &ctx, nullptr, readCallback, nullptr) != ARCHIVE_OK) {
    throwArchiveError(a.get(), &ctx, "cannot read layer as tar");
  }
  for (;;) {
    struct archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    // ARCHIVE_RETRY ("Damaged tar archive") is an error too: skipping ahead to the next thing
    // that looks like a header would let a crafted body pose as entries.
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      throwArchiveError(a.get(), &ctx,
                        "cannot read tar header after entry " + std::to_string(writer.entries()));
    }
    writer.apply(a.get(), e);
  }
  stream.drain();
  writer.finish();
  if (opts.sync && ::syncfs(root.fd()) != 0) throw syncError(root.path(), errno);
  Result res;
  res.compressedDigest = stream.compressedDigest();
  res.diffId = stream.diffId();
  res.compressedBytes = stream.compressedBytes();
  res.uncompressedBytes = stream.uncompressedBytes();
  res.entries = writer.entries();
  res.directBytes = writer.directBytes();
  res.implicitDirs = writer.implicitDirs();
  return res;
}

bool isOpaque(int dirfd) {
  char v;
  return ::fgetxattr(dirfd, "trusted.overlay.opaque", &v, 1) == 1 ||
         ::fgetxattr(dirfd, "user.overlay.opaque", &v, 1) == 1;
}

void copyDirMetadata(int from, int to, const std::string& path) {
  struct stat st {};
  if (::fstat(from, &st) != 0) throw UnpackError("cannot stat lower directory \"" + path + "\"");
  if (::fchown(to, st.st_uid, st.st_gid) != 0 || ::fchmod(to, st.st_mode & 07777) != 0) {
    throw UnpackError("cannot copy owner and mode to implicit directory \"" + path +
                      "\": " + std::strerror(errno));
  }
  std::vector<char> names(4096);
  ssize_t n;
  while ((n = ::flistxattr(from, names.data(), names.size())) < 0 && errno == ERANGE) {
    names.resize(names.size() * 2);
  }
  std::vector<char> value(4096);
  for (ssize_t off = 0; n > 0 && off < n;) {
    const char* name = names.data() + off;
    off += static_cast<ssize_t>(strlen(name)) + 1;
    if (!isCopyableXattr(name)) continue;
    ssize_t vs;
    while ((vs = ::fgetxattr(from, name, value.data(), value.size())) < 0 && errno == ERANGE) {
      value.resize(value.size() * 2);
    }
    if (vs < 0) continue;
    if (::fsetxattr(to, name, value.data(), static_cast<size_t>(vs), 0) != 0 && errno != ENOTSUP) {
      throw UnpackError("cannot copy xattr " + std::string(name) + " to implicit directory \"" +
                        path + "\": " + std::strerror(errno));
    }
  }
  struct timespec ts[2] = {st.st_atim, st.st_mtim};
  if (::futimens(to, ts) != 0) {
    throw UnpackError("cannot copy times to implicit directory \"" + path + "\"");
  }
}

// What the lower layer `lower` says about `path`: the directory fd if it has a directory there,
// and whether layers further down are hidden (a whiteout, a non-directory or an opaque
// directory on the way).
struct LowerLookup {
  Fd dir;
  bool hidesBelow = false;
};
LowerLookup lookupLower(int lower, const std::string& path) {
  LowerLookup out;
  Fd cur(::fcntl(lower, F_DUPFD_CLOEXEC, 0));
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string comp = path.substr(pos, slash - pos);
    bool last = slash == path.size();
    pos = slash + 1;
    struct stat st {};
    if (::fstatat(cur.get(), comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return out;
    if (!S_ISDIR(st.st_mode)) {
      out.hidesBelow = true;  // whiteout or file: nothing below shows through
      return out;
    }
    Fd next(::openat(cur.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return out;
    cur = std::move(next);
    if (last) {
      out.dir = std::move(cur);
      return out;
    }
    if (isOpaque(cur.get())) out.hidesBelow = true;
  }
  return out;
}

}  // namespace

bool isSupportedMediaType(std::string_view mediaType) {
  return layerCompression(mediaType).has_value();
}

Result unpackLayer(Source& src, std::string_view mediaType, const std::filesystem::path& dir,
                   const Options& opts) {
  auto compression = layerCompression(mediaType);
  if (!compression) {
    throw UnpackError("refusing to unpack unknown layer media type \"" + std::string(mediaType) +
                      "\"");
  }
  SecureRoot root(dir);
  if (!SecureRoot::isEmptyDir(root.fd())) {
    // Rollback empties the directory, so it must only ever hold what we wrote.
    throw UnpackError("target directory " + dir.string() + " is not empty");
  }
  LayerStream stream(src, *compression, opts.limits.maxUncompressedBytes, opts.cancel,
                     opts.hashCompressed, opts.progressBytes, opts.threads);
  ReadContext ctx{&stream, nullptr};
  LayerWriter writer(root, opts, &throwArchiveError, &ctx);
  try {
    return unpackInto(stream, ctx, root, opts, writer);
  } catch (...) {
    writer.rollback();
    throw;
  }
}

void syncFilesystem(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    throw UnpackError("open " + dir.string() + " to sync its filesystem: " + std::strerror(errno));
  }
  if (::syncfs(fd.get()) != 0) throw syncError(dir, errno);
}

void fixImplicitDirs(const std::filesystem::path& dir, const std::vector<std::string>& implicitDirs,
                     const std::vector<std::filesystem::path>& lowerDirs) {
  if (implicitDirs.empty()) return;
  SecureRoot root(dir);
  std::vector<Fd> lowers;
  for (const auto& l : lowerDirs) {
    Fd fd(::open(l.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      throw UnpackError("cannot open lower directory " + l.string() + ": " + std::strerror(errno));
    }
    lowers.push_back(std::move(fd));
  }
  for (const auto& raw : implicitDirs) {
    std::string path = cleanEntryPath(raw);
    if (path.empty()) continue;
    auto [parent, leaf] = splitParent(path);
    auto pdir = root.findDir(parent);
    if (!pdir) continue;
    Fd d(::openat(pdir->get(), std::string(leaf).c_str(),
                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!d) continue;  // replaced by a later entry of the layer
    for (const auto& lower : lowers) {
      LowerLookup found = lookupLower(lower.get(), path);
      if (found.dir) {
        copyDirMetadata(found.dir.get(), d.get(), path);
        break;
      }
      if (found.hidesBelow) break;
    }
  }
}

}  // namespace snapimport::unpack
