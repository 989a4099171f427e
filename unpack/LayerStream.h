#pragma once
// The byte pipeline in front of the tar reader: Source -> compressed sha256 -> decompressor ->
// diff_id sha256 -> caller.
//
// Four threads share the work, because on a CPU without SHA-NI the two SHA-256 streams cost more
// than inflating and writing together, and one thread doing all of it loses to a plain
// `igzip -dc | tar -x` pipe:
//   reader    Source::read and the compressed sha256            -> in ring
//   inflater  gzip / zstd                                        in ring -> out ring
//   hasher    diff_id sha256 over each out block, in order       out ring
//   caller    next(): tar parsing and file writes (LayerWriter)  out ring
// An uncompressed layer has no inflater: the reader fills the out ring itself. The rings hold a few
// MiB in all however large the layer is. The uncompressed-size limit is enforced where bytes are
// produced (a decompression bomb stops being inflated at the limit, whatever the caller is doing)
// and cancellation is polled by every stage.
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "unpack/BlockRing.h"
#include "unpack/Decompressor.h"
#include "unpack/MediaType.h"
#include "unpack/Sha256.h"
#include "unpack/Unpacker.h"

namespace snapimport::unpack {

class LayerStream {
 public:
  LayerStream(Source& src, Compression compression, uint64_t maxUncompressedBytes,
              const std::atomic<bool>* cancel, bool hashCompressed = true,
              std::atomic<uint64_t>* progressBytes = nullptr, ThreadObserver* threads = nullptr);
  // Stops every stage and waits for them. A reader blocked inside Source::read is waited for: the
  // source's own stall timeout bounds that, exactly as it bounded the caller's read when everything
  // ran on one thread.
  ~LayerStream();
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;

  // The next block of the uncompressed tar stream, valid until the next call; empty at the end.
  // Rethrows whatever stopped a stage (source error, corrupt compression, size limit, cancellation)
  // on the caller's thread, with its type intact.
  std::span<const uint8_t> next();
  // Reads everything left (padding after the tar end-of-archive marker), so that both digests cover
  // the whole blob exactly as the registry and the image config describe it.
  void drain();

  // Valid once next() has returned an empty block.
  uint64_t compressedBytes() const { return compressedBytes_.load(); }
  uint64_t uncompressedBytes() const { return uncompressedBytes_; }
  // Valid once next() has returned an empty block; empty when hashCompressed was false.
  std::string compressedDigest() const;
  std::string diffId() const { return diffId_; }

 private:
  void readCompressed();
  void readPlain();
  void inflate();
  void hash();
  // Runs one stage on its thread, between the ThreadObserver's two calls.
  void observed(void (LayerStream::*stage)());
  size_t readSource(void* buf, size_t len);
  void checkCancel() const;
  // Counts n more uncompressed bytes against the limit; compressedPos (how far into the blob the
  // producing stage is) goes into the error.
  void account(size_t n, uint64_t compressedPos);
  void joinAll() noexcept;

  Source& src_;
  uint64_t maxUncompressedBytes_;
  const std::atomic<bool>* cancel_;
  std::atomic<uint64_t>* progressBytes_;
  ThreadObserver* threads_;
  std::unique_ptr<Decompressor> decompressor_;
  bool hashCompressed_;

  // Each is written by one stage and read by the caller only after joinAll(); the compressed count
  // also shows up in other stages' cancellation messages, hence atomic.
  std::atomic<uint64_t> compressedBytes_{0};  // reader
  uint64_t uncompressedBytes_ = 0;            // inflater (reader when uncompressed)
  Sha256 compressedHash_, tarHash_;           // reader, hasher
  std::string compressedDigest_, diffId_;

  BlockRing in_, out_;     // out_ consumers: 0 the hasher, 1 the caller
  bool holding_ = false;   // the caller holds an out block
  bool finished_ = false;  // next() returned the end
  std::thread reader_, inflater_, hasher_;
};

}  // namespace snapimport::unpack
