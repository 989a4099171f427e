#pragma once
// Streaming decompressors for layer blobs. All in-process (registry-and-security.md §5 row 13:
// never exec a helper), bounded memory, and strict about truncation and trailing garbage.
#include <cstdint>
#include <memory>
#include <span>

namespace snapimport::unpack {

class Decompressor {
 public:
  virtual ~Decompressor() = default;
  // Consumes input from the front of `in` (advancing it) and writes at most out.size() bytes.
  // Returns the number of bytes written. Throws UnpackError on corrupt input.
  virtual size_t decompress(std::span<const uint8_t>& in, std::span<uint8_t> out) = 0;
  // The source has ended and decompress() yields nothing more: throws if the last frame or
  // member is incomplete.
  virtual void finish() = 0;
};

// gzip via ISA-L inflate, any number of concatenated members (RFC 1952 §2.2).
std::unique_ptr<Decompressor> makeGzipDecompressor();
// zstd via libzstd, any number of frames (skippable frames included).
std::unique_ptr<Decompressor> makeZstdDecompressor();

}  // namespace snapimport::unpack
