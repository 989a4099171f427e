#pragma once
// The byte pipeline in front of the tar reader: Source -> compressed sha256 -> decompressor ->
// diff_id sha256 -> caller. Pull-driven, one buffer each way, so memory stays constant however
// large the layer is. Enforces the uncompressed-size limit and polls for cancellation.
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "unpack/Decompressor.h"
#include "unpack/MediaType.h"
#include "unpack/Sha256.h"
#include "unpack/Unpacker.h"

namespace snapimport::unpack {

class LayerStream {
 public:
  LayerStream(Source& src, Compression compression, uint64_t maxUncompressedBytes,
              const std::atomic<bool>* cancel, bool hashCompressed = true);

  // The next block of the uncompressed tar stream, valid until the next call; empty at the end.
  std::span<const uint8_t> next();
  // Reads everything left (padding after the tar end-of-archive marker), so that both digests
  // cover the whole blob exactly as the registry and the image config describe it.
  void drain();

  uint64_t compressedBytes() const { return compressedBytes_; }
  uint64_t uncompressedBytes() const { return uncompressedBytes_; }
  // Valid once next() has returned an empty block; empty when hashCompressed was false.
  std::string compressedDigest();
  std::string diffId();

 private:
  void checkCancel() const;
  void account(std::span<const uint8_t> out);

  Source& src_;
  Compression compression_;
  uint64_t maxUncompressedBytes_;
  const std::atomic<bool>* cancel_;
  std::unique_ptr<Decompressor> decompressor_;
  std::vector<uint8_t> in_, out_;
  std::span<const uint8_t> pending_;
  bool hashCompressed_;
  bool sourceDone_ = false, done_ = false;
  uint64_t compressedBytes_ = 0, uncompressedBytes_ = 0;
  Sha256 compressedHash_, tarHash_;
  std::string compressedDigest_, diffId_;
};

}  // namespace snapimport::unpack
