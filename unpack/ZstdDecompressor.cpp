#include <zstd.h>

#include <string>

#include "unpack/Decompressor.h"
#include "unpack/Unpacker.h"

namespace snapimport::unpack {
namespace {

// 2^27 (128 MiB) is zstd's own default cap on the window a frame may ask for; it bounds memory
// whatever the header claims.
constexpr int kWindowLogMax = 27;

class ZstdDecompressor : public Decompressor {
 public:
  ZstdDecompressor() : ctx_(ZSTD_createDCtx()) {
    if (!ctx_) throw UnpackError("zstd: cannot create decompression context");
    ZSTD_DCtx_setParameter(ctx_, ZSTD_d_windowLogMax, kWindowLogMax);
  }
  ~ZstdDecompressor() override { ZSTD_freeDCtx(ctx_); }

  size_t decompress(std::span<const uint8_t>& in, std::span<uint8_t> out) override {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    while (ob.pos < ob.size) {
      size_t inBefore = ib.pos, outBefore = ob.pos;
      size_t rc = ZSTD_decompressStream(ctx_, &ob, &ib);
      if (ZSTD_isError(rc)) throw UnpackError(std::string("zstd: ") + ZSTD_getErrorName(rc));
      if (ib.pos == inBefore && ob.pos == outBefore) break;  // needs more input
      sawInput_ = true;
      // 0 = a frame just ended and is fully flushed; any other value means we are inside one.
      // Only calls that made progress count: an idle call at a frame boundary returns the size
      // of the next frame header, not "inside a frame".
      frameOpen_ = rc != 0;
    }
    in = in.subspan(ib.pos);
    return ob.pos;
  }

  void finish() override {
    if (!sawInput_) throw UnpackError("zstd: empty stream");
    if (frameOpen_) throw UnpackError("zstd: stream truncated inside a frame");
  }

 private:
  ZSTD_DCtx* ctx_;
  bool sawInput_ = false;
  bool frameOpen_ = false;
};

}  // namespace

std::unique_ptr<Decompressor> makeZstdDecompressor() {
  return std::make_unique<ZstdDecompressor>();
}

}  // namespace snapimport::unpack
