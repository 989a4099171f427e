#pragma once
// Layer stream -> overlay diff directory, in one streaming pass:
//   Source -> sha256 (compressed digest) -> gzip (ISA-L) / zstd / none -> sha256 (diff_id)
//   -> tar reader (libarchive, read side only) -> dirfd-relative writes confined to `dir`.
// Knows nothing of gRPC, the content store or the registry.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace snapimport::unpack {

// Pull-style byte source; read returns 0 at end of stream and throws on error.
class Source {
 public:
  virtual ~Source() = default;
  virtual size_t read(void* buf, size_t len) = 0;
};

// Caps on attacker-controlled sizes (registry-and-security.md §5 row 8). Defaults are generous
// enough for every real image we know of and small enough to keep one layer from taking the node.
struct Limits {
  // Per entry: path + link target + xattr names and values (PAX and GNU long-name records are
  // additionally capped at 1 MiB each by libarchive itself).
  uint64_t maxHeaderBytes = 1 << 20;
  uint64_t maxPathBytes = 4096;                 // one entry name or link target, as in PATH_MAX
  uint64_t maxEntries = 4'000'000;              // tar entries, whiteouts included
  uint64_t maxUncompressedBytes = 64ull << 30;  // the whole tar stream (diff_id input)
};

// Told on each of an unpack's own pipeline threads (reader, inflater, hasher) as it starts and
// just before it returns; not on the caller's thread. The importer uses it to find the threads of
// a layer by their thread ids and change their scheduling priority while they run.
class ThreadObserver {
 public:
  virtual ~ThreadObserver() = default;
  virtual void threadStarted() = 0;
  virtual void threadEnding() = 0;
  // On the caller's thread: it waited this long for the next block of the tar stream.
  virtual void writerWaited(std::chrono::nanoseconds) {}
};

struct Options {
  // Opaque directories get user.overlay.opaque instead of trusted.overlay.opaque (overlay mounted
  // with -o userxattr).
  bool userxattr = false;
  // Device nodes other than whiteouts; when false they are refused.
  bool allowDevices = true;
  // One syncfs() before returning, so a committed snapshot survives a crash.
  bool sync = true;
  Limits limits;
  // false when the Source already verifies the compressed digest (a registry blob reader does):
  // hashing the same bytes twice costs ~20% of an import's CPU on machines without SHA-NI.
  // Result::compressedDigest is then empty.
  bool hashCompressed = true;
  // Regular files at least this large are written with O_DIRECT where the filesystem allows it
  // (DirectFileWriter): no page-cache copy, no write-back afterwards, and the node's page cache
  // keeps its own pages. 0 writes everything through the page cache.
  uint64_t directWriteMinBytes = 256 << 10;
  // Polled between entries and between buffers; when set the unpack stops and cleans up.
  const std::atomic<bool>* cancel = nullptr;
  // When set, advanced (relaxed) by the tar writer as it consumes uncompressed bytes, so a
  // progress display on another thread can show how far extraction has got. Ends equal to
  // Result::uncompressedBytes.
  std::atomic<uint64_t>* progressBytes = nullptr;
  // When set, told of every pipeline thread this unpack starts (see ThreadObserver).
  ThreadObserver* threads = nullptr;
};

struct Result {
  std::string compressedDigest;  // "sha256:<hex>" of the bytes read from the Source
  std::string diffId;            // "sha256:<hex>" of the uncompressed tar stream
  uint64_t compressedBytes = 0, uncompressedBytes = 0, entries = 0;
  // File bytes written with O_DIRECT (Options::directWriteMinBytes); the rest of the files' data
  // went through the page cache.
  uint64_t directBytes = 0;
  // Directories created only because an entry lived below them, parents first, relative to the
  // diff dir. They must take their metadata from the lower layers (fixImplicitDirs).
  std::vector<std::string> implicitDirs;
};

// Base class of every error the unpacker throws on purpose (bad layer, limit, I/O failure).
class UnpackError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A limit from Limits was exceeded.
class LimitExceeded : public UnpackError {
 public:
  using UnpackError::UnpackError;
};
// Options::cancel was set.
class Cancelled : public UnpackError {
 public:
  using UnpackError::UnpackError;
};

// True for every layer media type unpackLayer accepts (OCI, Docker, non-distributable, foreign).
bool isSupportedMediaType(std::string_view mediaType);

// Extracts one layer into `dir`, which must be an existing empty directory (an overlay
// upper/diff directory). On any failure or cancel, everything written is removed and the
// exception propagates. Unknown media types are refused before anything is read.
Result unpackLayer(Source& src, std::string_view mediaType, const std::filesystem::path& dir,
                   const Options& opts);

// What Options::sync does, for a caller that unpacked with sync = false and writes the layer
// back itself (the write importer, once the unpack no longer counts against its concurrency;
// the diff service for a tree staged without it): one syncfs() of the filesystem holding `dir`.
// Throws UnpackError naming `dir` and the errno.
void syncFilesystem(const std::filesystem::path& dir);

// Gives implicit directories the mode/owner/times/xattrs of the first lower dir that has them
// (overlay lowerdirs, nearest first). Overlay-internal and trusted.* xattrs are never copied.
// Paths that are no longer directories in `dir`, or have no directory in the lowers, are left
// alone.
void fixImplicitDirs(const std::filesystem::path& dir, const std::vector<std::string>& implicitDirs,
                     const std::vector<std::filesystem::path>& lowerDirs);

}  // namespace snapimport::unpack
