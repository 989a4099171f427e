#include <isa-l/igzip_lib.h>

#include <string>

#include "unpack/Decompressor.h"
#include "unpack/Unpacker.h"

namespace snapimport::unpack {
namespace {

const char* isalError(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
      return "invalid deflate lookback distance";
    case ISAL_INVALID_WRAPPER:
      return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD:
      return "unsupported gzip compression method";
    case ISAL_INCORRECT_CHECKSUM:
      return "gzip CRC32 mismatch";
    case ISAL_NEED_DICT:
      return "preset dictionary required";
    default:
      return "ISA-L inflate error";
  }
}

class GzipDecompressor : public Decompressor {
 public:
  GzipDecompressor() : state_(std::make_unique<inflate_state>()) { reset(); }

  size_t decompress(std::span<const uint8_t>& in, std::span<uint8_t> out) override {
    size_t produced = 0;
    while (produced < out.size()) {
      if (state_->block_state == ISAL_BLOCK_FINISH) {
        // A member ended. More input means another member follows (multi-member gzip, as
        // pigz and `cat a.gz b.gz` produce); anything that is not a gzip header is an error.
        if (in.empty()) break;
        reset();
        ++members_;
      }
      state_->next_in = const_cast<uint8_t*>(in.data());
      state_->avail_in = static_cast<uint32_t>(std::min<size_t>(in.size(), UINT32_MAX));
      state_->next_out = out.data() + produced;
      state_->avail_out =
          static_cast<uint32_t>(std::min<size_t>(out.size() - produced, UINT32_MAX));
      uint32_t inBefore = state_->avail_in, outBefore = state_->avail_out;
      int rc = isal_inflate(state_.get());
      size_t consumed = inBefore - state_->avail_in, written = outBefore - state_->avail_out;
      in = in.subspan(consumed);
      produced += written;
      if (rc < 0) {
        throw UnpackError(std::string("gzip: ") + isalError(rc) + " in member " +
                          std::to_string(members_ + 1));
      }
      if (consumed == 0 && written == 0) break;  // needs more input
    }
    return produced;
  }

  void finish() override {
    if (state_->block_state != ISAL_BLOCK_FINISH) {
      throw UnpackError("gzip: stream truncated in member " + std::to_string(members_ + 1));
    }
  }

 private:
  void reset() {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;  // parse the header and verify CRC32 and ISIZE
  }

  std::unique_ptr<inflate_state> state_;  // ~200 KiB; heap, not stack
  uint64_t members_ = 0;
};

}  // namespace

std::unique_ptr<Decompressor> makeGzipDecompressor() {
  return std::make_unique<GzipDecompressor>();
}

}  // namespace snapimport::unpack
