#include "UnpackCommand.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "common/Log.h"
#include "unpack/FileSource.h"
#include "unpack/MediaType.h"
#include "unpack/Unpacker.h"

namespace snapimport::cli {
namespace {

struct UnpackFlags {
  std::string mediaType;
  std::string input;
  std::string dir;
  std::vector<std::string> lowers;
  bool userxattr = false;
  bool noSync = false;
  bool noDevices = false;
  bool compressedDigest = false;
  uint64_t directWriteMinBytes = unpack::Options{}.directWriteMinBytes;
  unpack::Limits limits;
};

// Lets the command look at the first bytes (to guess the compression when no media type is
// given) without losing them, also when reading from a pipe.
class PeekSource : public unpack::Source {
 public:
  explicit PeekSource(unpack::Source& inner) : inner_(inner) {}
  const std::vector<uint8_t>& peek(size_t n) {
    while (head_.size() < n) {
      uint8_t buf[512];
      size_t got = inner_.read(buf, std::min(sizeof buf, n - head_.size()));
      if (got == 0) break;
      head_.insert(head_.end(), buf, buf + got);
    }
    return head_;
  }
  size_t read(void* buf, size_t len) override {
    if (pos_ < head_.size()) {
      size_t n = std::min(len, head_.size() - pos_);
      std::memcpy(buf, head_.data() + pos_, n);
      pos_ += n;
      return n;
    }
    return inner_.read(buf, len);
  }

 private:
  unpack::Source& inner_;
  std::vector<uint8_t> head_;
  size_t pos_ = 0;
};

std::string sniffMediaType(PeekSource& src) {
  const auto& h = src.peek(4);
  if (h.size() >= 2 && h[0] == 0x1f && h[1] == 0x8b)
    return "application/vnd.oci.image.layer.v1.tar+gzip";
  if (h.size() >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd) {
    return "application/vnd.oci.image.layer.v1.tar+zstd";
  }
  return "application/vnd.oci.image.layer.v1.tar";
}

std::string canonicalMediaType(const std::string& given) {
  auto c = unpack::compressionByName(given);
  if (!c) return given;  // let unpackLayer refuse it with its own message
  if (unpack::isSupportedMediaType(given)) return given;
  switch (*c) {
    case unpack::Compression::None:
      return "application/vnd.oci.image.layer.v1.tar";
    case unpack::Compression::Gzip:
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    case unpack::Compression::Zstd:
      return "application/vnd.oci.image.layer.v1.tar+zstd";
  }
  return given;
}

int runUnpack(const UnpackFlags& flags) {
  try {
    unpack::FileSource file(flags.input);
    PeekSource src(file);
    std::string mediaType =
        flags.mediaType.empty() ? sniffMediaType(src) : canonicalMediaType(flags.mediaType);
    if (::mkdir(flags.dir.c_str(), 0755) != 0 && errno != EEXIST) {
      throw unpack::UnpackError("cannot create " + flags.dir + ": " + std::strerror(errno));
    }
    unpack::Options opts;
    opts.userxattr = flags.userxattr;
    opts.sync = !flags.noSync;
    opts.allowDevices = !flags.noDevices;
    opts.limits = flags.limits;
    opts.directWriteMinBytes = flags.directWriteMinBytes;
    // The importer's unpack does not hash the blob: the registry client already checks it
    // against the manifest. A local file has nothing to check against, so the command only
    // computes it when asked (it costs ~15% of the CPU of a gzip layer without SHA-NI).
    opts.hashCompressed = flags.compressedDigest;
    auto start = std::chrono::steady_clock::now();
    unpack::Result res = unpack::unpackLayer(src, mediaType, flags.dir, opts);
    if (!flags.lowers.empty()) {
      std::vector<std::filesystem::path> lowers(flags.lowers.begin(), flags.lowers.end());
      unpack::fixImplicitDirs(flags.dir, res.implicitDirs, lowers);
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("media_type=%s\n", mediaType.c_str());
    std::printf("diff_id=%s\n", res.diffId.c_str());
    if (!res.compressedDigest.empty()) {
      std::printf("compressed_digest=%s\n", res.compressedDigest.c_str());
    }
    std::printf("compressed_bytes=%llu\n", static_cast<unsigned long long>(res.compressedBytes));
    std::printf("uncompressed_bytes=%llu\n",
                static_cast<unsigned long long>(res.uncompressedBytes));
    std::printf("entries=%llu\n", static_cast<unsigned long long>(res.entries));
    std::printf("direct_bytes=%llu\n", static_cast<unsigned long long>(res.directBytes));
    std::printf("implicit_dirs=%zu\n", res.implicitDirs.size());
    std::printf("seconds=%.3f\n", secs);
    std::printf("mib_per_s=%.1f\n", secs > 0 ? res.uncompressedBytes / secs / (1 << 20) : 0.0);
    std::printf("entries_per_s=%.0f\n", secs > 0 ? res.entries / secs : 0.0);
    return 0;
  } catch (const std::exception& e) {
    log::error("unpack failed", {{"input", flags.input}, {"dir", flags.dir}, {"error", e.what()}});
    return 1;
  }
}

}  // namespace

void addUnpackCommand(CLI::App& app) {
  auto flags = std::make_shared<UnpackFlags>();
  CLI::App* cmd = app.add_subcommand(
      "unpack", "extract one layer into an overlay diff directory, as the importer would");
  cmd->add_option("--media-type", flags->mediaType,
                  "layer media type, or tar|gzip|zstd (default: guessed from the first bytes)");
  cmd->add_option("--lower", flags->lowers,
                  "lower diff directory, nearest first; implicit directories take its metadata");
  cmd->add_flag("--userxattr", flags->userxattr,
                "mark opaque directories with user.overlay.opaque");
  cmd->add_flag("--no-sync", flags->noSync, "skip the final syncfs");
  cmd->add_flag("--no-devices", flags->noDevices, "refuse device nodes (whiteouts still work)");
  cmd->add_flag("--compressed-digest", flags->compressedDigest,
                "also hash the compressed blob and print compressed_digest (uncompressed layers "
                "always print it: it is the diff_id)");
  cmd->add_option("--direct-write-min", flags->directWriteMinBytes,
                  "write files of at least this many bytes with O_DIRECT, past the page cache; "
                  "0: none")
      ->capture_default_str();
  cmd->add_option("--max-bytes", flags->limits.maxUncompressedBytes, "limit on uncompressed bytes");
  cmd->add_option("--max-entries", flags->limits.maxEntries, "limit on tar entries");
  cmd->add_option("--max-header-bytes", flags->limits.maxHeaderBytes,
                  "limit on one entry's name, link and xattr bytes");
  cmd->add_option("--max-path-bytes", flags->limits.maxPathBytes,
                  "limit on one name or link target");
  cmd->add_option("FILE", flags->input, "layer blob, or - for stdin")->required();
  cmd->add_option("DIR", flags->dir, "empty target directory (created if missing)")->required();
  cmd->callback([flags] { std::exit(runUnpack(*flags)); });
}

}  // namespace snapimport::cli
