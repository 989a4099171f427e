#include "unpack/LayerStream.h"

namespace snapimport::unpack {
namespace {

// Small enough that a block is still in L2 when it is hashed, parsed and written out, large enough
// that per-block overhead (locking, callbacks, syscalls) disappears. The ring lengths let each
// stage run a few blocks ahead of the next, which is what lets the scheduler keep both cores busy:
// 16 x 128 KiB + 8 x 256 KiB = 4 MiB in flight. Sixteen out blocks bought nothing measurable
// (bench/unpack large layer 1.76 s with 16, 1.69 s with 8) and cost 2 MiB per layer in flight,
// 12 MiB of the daemon's peak RSS with six layers importing at once (62 -> 54-56 MiB).
constexpr size_t kInBlock = 128 << 10, kInBlocks = 16;
constexpr size_t kOutBlock = 256 << 10, kOutBlocks = 8;

constexpr size_t kHasher = 0, kCaller = 1;

// Runs a producing stage: `body` returns true when it reached the end of the stream (the ring is
// then closed), false when the ring was stopped under it; an exception is handed to the ring's
// consumers, to surface behind the blocks published before it.
template <class Body>
void produceInto(BlockRing& ring, Body body) {
  try {
    if (body()) ring.close();
  } catch (...) {
    ring.close(std::current_exception());
  }
}

}  // namespace

LayerStream::LayerStream(Source& src, Compression compression, uint64_t maxUncompressedBytes,
                         const std::atomic<bool>* cancel, bool hashCompressed,
                         std::atomic<uint64_t>* progressBytes, ThreadObserver* threads)
    : src_(src),
      maxUncompressedBytes_(maxUncompressedBytes),
      cancel_(cancel),
      progressBytes_(progressBytes),
      threads_(threads),
      hashCompressed_(hashCompressed),
      in_(compression == Compression::None ? 0 : kInBlocks, kInBlock, 1),
      out_(kOutBlocks, kOutBlock, 2) {
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
  try {
    hasher_ = std::thread([this] { observed(&LayerStream::hash); });
    if (decompressor_) {
      inflater_ = std::thread([this] { observed(&LayerStream::inflate); });
      reader_ = std::thread([this] { observed(&LayerStream::readCompressed); });
    } else {
      reader_ = std::thread([this] { observed(&LayerStream::readPlain); });
    }
  } catch (...) {
    joinAll();  // a joinable std::thread must not be destroyed
    throw;
  }
}

LayerStream::~LayerStream() { joinAll(); }

// Each stage catches its own errors and hands them on through its ring, so `stage` returns.
void LayerStream::observed(void (LayerStream::*stage)()) {
  if (threads_) threads_->threadStarted();
  (this->*stage)();
  if (threads_) threads_->threadEnding();
}

void LayerStream::joinAll() noexcept {
  in_.stop();
  out_.stop();
  for (auto* t : {&reader_, &inflater_, &hasher_}) {
    if (t->joinable()) t->join();
  }
}

void LayerStream::checkCancel() const {
  if (cancel_ && cancel_->load(std::memory_order_relaxed)) {
    throw Cancelled("unpack cancelled after " + std::to_string(compressedBytes_.load()) +
                    " compressed bytes");
  }
}

size_t LayerStream::readSource(void* buf, size_t len) {
  checkCancel();
  size_t n = src_.read(buf, len);
  compressedBytes_ += n;
  return n;
}

void LayerStream::account(size_t n, uint64_t compressedPos) {
  uncompressedBytes_ += n;
  if (uncompressedBytes_ > maxUncompressedBytes_) {
    throw LimitExceeded("layer expands beyond the limit of " +
                        std::to_string(maxUncompressedBytes_) + " uncompressed bytes (after " +
                        std::to_string(compressedPos) + " compressed bytes)");
  }
}

void LayerStream::readCompressed() {
  produceInto(in_, [this] {
    for (;;) {
      std::span<uint8_t> block = in_.acquire();
      if (block.empty()) return false;  // stopped
      size_t n = readSource(block.data(), block.size());
      if (n == 0) break;
      if (hashCompressed_) compressedHash_.update(block.data(), n);
      in_.publish(n);
    }
    if (hashCompressed_) compressedDigest_ = compressedHash_.digest();
    return true;
  });
}

void LayerStream::readPlain() {
  // The blob is the tar: no inflater, and the hasher's digest serves as both digests.
  produceInto(out_, [this] {
    for (bool end = false; !end;) {
      std::span<uint8_t> block = out_.acquire();
      if (block.empty()) return false;  // stopped
      size_t size = 0;
      while (size < block.size()) {
        size_t n = readSource(block.data() + size, block.size() - size);
        if (n == 0) {
          end = true;
          break;
        }
        size += n;
        account(n, compressedBytes_);
      }
      if (size > 0) out_.publish(size);
    }
    return true;
  });
}

void LayerStream::inflate() {
  produceInto(out_, [this] {
    std::span<const uint8_t> pending;
    // Compressed bytes handed to the decompressor so far. The reader runs blocks ahead, so its own
    // count would misplace errors; the stream position is taken - pending.size().
    uint64_t taken = 0;
    bool holding = false, inputDone = false, ended = false;
    while (!ended) {
      std::span<uint8_t> block = out_.acquire();
      if (block.empty()) return false;  // stopped
      size_t size = 0;
      while (size < block.size()) {
        if (pending.empty() && !inputDone) {
          if (holding) in_.release(0);
          pending = in_.wait(0);  // rethrows the reader's error
          taken += pending.size();
          holding = !pending.empty();
          if (!holding) {
            if (in_.stopped()) return false;
            inputDone = true;
          }
        }
        size_t before = pending.size();
        size_t produced = decompressor_->decompress(pending, block.subspan(size));
        size += produced;
        account(produced, taken - pending.size());
        if (produced > 0) continue;
        if (inputDone && pending.empty()) {
          decompressor_->finish();  // throws on a truncated stream
          ended = true;
          break;
        }
        if (!pending.empty() && pending.size() == before) {
          throw UnpackError("decompressor made no progress at compressed offset " +
                            std::to_string(taken - pending.size()));
        }
        checkCancel();  // a long run of input that inflates to nothing (empty deflate blocks)
      }
      if (size > 0) out_.publish(size);
    }
    return true;
  });
}

void LayerStream::hash() {
  try {
    for (;;) {
      std::span<const uint8_t> block = out_.wait(kHasher);
      if (block.empty()) break;
      tarHash_.update(block.data(), block.size());
      out_.release(kHasher);
    }
    if (!out_.stopped()) diffId_ = tarHash_.digest();
  } catch (...) {
    // The stream failed in front of us; the caller gets the same error from its own wait.
  }
}

std::span<const uint8_t> LayerStream::next() {
  if (finished_) return {};
  if (cancel_ && cancel_->load(std::memory_order_relaxed)) throw Cancelled("unpack cancelled");
  if (holding_) {
    out_.release(kCaller);
    holding_ = false;
  }
  auto waitStart =
      threads_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  std::span<const uint8_t> block = out_.wait(kCaller);  // rethrows a stage's error
  if (threads_) threads_->writerWaited(std::chrono::steady_clock::now() - waitStart);
  if (!block.empty()) {
    holding_ = true;
    if (progressBytes_) progressBytes_->fetch_add(block.size(), std::memory_order_relaxed);
    return block;
  }
  // The end: wait for the hasher to finish the diff_id; joining also publishes every stage's
  // counters and digests to this thread.
  for (auto* t : {&reader_, &inflater_, &hasher_}) {
    if (t->joinable()) t->join();
  }
  finished_ = true;
  return {};
}

void LayerStream::drain() {
  while (!next().empty()) {
  }
}

std::string LayerStream::compressedDigest() const {
  if (!decompressor_) return diffId_;
  return compressedDigest_;
}

}  // namespace snapimport::unpack
