#include "unpack/LayerStream.h"

namespace snapimport::unpack {
namespace {

// Small enough that a block is still in L2 when it is hashed, parsed and written out, large
// enough that per-block overhead (callbacks, syscalls) disappears.
constexpr size_t kInBlock = 128 << 10;
constexpr size_t kOutBlock = 256 << 10;

}  // namespace

LayerStream::LayerStream(Source& src, Compression compression, uint64_t maxUncompressedBytes,
                         const std::atomic<bool>* cancel, bool hashCompressed)
    : src_(src),
      compression_(compression),
      maxUncompressedBytes_(maxUncompressedBytes),
      cancel_(cancel),
      out_(kOutBlock),
      hashCompressed_(hashCompressed) {
  switch (compression) {
    case Compression::None:
      break;
    case Compression::Gzip:
      decompressor_ = makeGzipDecompressor();
      break;
    case Compression::Zstd:
      decompressor_ = makeZstdDecompressor();
      break;
  }
  if (decompressor_) in_.resize(kInBlock);
}

void LayerStream::checkCancel() const {
  if (cancel_ && cancel_->load(std::memory_order_relaxed)) {
    throw Cancelled("unpack cancelled after " + std::to_string(compressedBytes_) +
                    " compressed bytes");
  }
}

void LayerStream::account(std::span<const uint8_t> out) {
  uncompressedBytes_ += out.size();
  if (uncompressedBytes_ > maxUncompressedBytes_) {
    throw LimitExceeded("layer expands beyond the limit of " +
                        std::to_string(maxUncompressedBytes_) + " uncompressed bytes (after " +
                        std::to_string(compressedBytes_) + " compressed bytes)");
  }
  tarHash_.update(out.data(), out.size());
}

std::span<const uint8_t> LayerStream::next() {
  if (done_) return {};
  checkCancel();
  if (!decompressor_) {
    // Uncompressed layer: the blob is the tar, so one hash serves as both digests.
    size_t n = src_.read(out_.data(), out_.size());
    if (n == 0) {
      done_ = true;
      return {};
    }
    compressedBytes_ += n;
    std::span<const uint8_t> block(out_.data(), n);
    account(block);
    return block;
  }
  for (;;) {
    if (pending_.empty() && !sourceDone_) {
      size_t n = src_.read(in_.data(), in_.size());
      if (n == 0) {
        sourceDone_ = true;
      } else {
        compressedBytes_ += n;
        if (hashCompressed_) compressedHash_.update(in_.data(), n);
        pending_ = std::span<const uint8_t>(in_.data(), n);
      }
    }
    size_t before = pending_.size();
    size_t produced = decompressor_->decompress(pending_, out_);
    if (produced > 0) {
      std::span<const uint8_t> block(out_.data(), produced);
      account(block);
      return block;
    }
    if (sourceDone_ && pending_.empty()) {
      decompressor_->finish();
      done_ = true;
      return {};
    }
    if (!pending_.empty() && pending_.size() == before) {
      throw UnpackError("decompressor made no progress at compressed offset " +
                        std::to_string(compressedBytes_ - pending_.size()));
    }
  }
}

void LayerStream::drain() {
  while (!next().empty()) {
  }
}

std::string LayerStream::compressedDigest() {
  if (!decompressor_) return diffId();
  if (!hashCompressed_) return {};
  if (compressedDigest_.empty()) compressedDigest_ = compressedHash_.digest();
  return compressedDigest_;
}

std::string LayerStream::diffId() {
  if (diffId_.empty()) diffId_ = tarHash_.digest();
  return diffId_;
}

}  // namespace snapimport::unpack
