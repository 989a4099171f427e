#include "unpack/DirectFileWriter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "unpack/Unpacker.h"

namespace snapimport::unpack {
namespace {

[[noreturn]] void throwWrite(std::string_view path, int err) {
  throw UnpackError("cannot write \"" + std::string(path) + "\": " + std::strerror(err));
}

size_t roundUp(size_t n, size_t align) { return (n + align - 1) / align * align; }

}  // namespace

void DirectFileWriter::FreeDeleter::operator()(char* p) const { std::free(p); }

DirectFileWriter::DirectFileWriter(size_t chunkBytes) : chunk_(chunkBytes) {}

DirectFileWriter::~DirectFileWriter() = default;

bool DirectFileWriter::probe(int fd) {
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) != 0 ||
      !(stx.stx_mask & STATX_DIOALIGN) || stx.stx_dio_offset_align == 0 ||
      stx.stx_dio_mem_align == 0) {
    return false;
  }
  // Page alignment at least: a chunk then never shares a page with its neighbour in memory.
  offsetAlign_ = stx.stx_dio_offset_align;
  const size_t memAlign = std::max<size_t>(stx.stx_dio_mem_align, 4096);
  chunk_ = roundUp(std::max(chunk_, offsetAlign_), std::max(offsetAlign_, memAlign));
  void* p = nullptr;
  if (::posix_memalign(&p, memAlign, chunk_) != 0) return false;
  buf_.reset(static_cast<char*>(p));
  return true;
}

bool DirectFileWriter::begin(int fd, std::string path) {
  if (state_ == State::Unprobed) state_ = probe(fd) ? State::Usable : State::Refused;
  if (state_ != State::Usable) return false;
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) {
    state_ = State::Refused;
    return false;
  }
  fd_ = fd;
  path_ = std::move(path);
  used_ = 0;
  direct_ = true;
  return true;
}

void DirectFileWriter::append(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    if (!direct_) {
      if (used_ > 0) writeBuffered(buf_.get(), std::exchange(used_, 0));
      writeBuffered(p, size);
      return;
    }
    const size_t n = std::min(size, chunk_ - used_);
    std::memcpy(buf_.get() + used_, p, n);
    used_ += n;
    p += n;
    size -= n;
    if (used_ == chunk_) flushAligned(chunk_);
  }
}

void DirectFileWriter::finish() {
  if (direct_) {
    const size_t aligned = used_ / offsetAlign_ * offsetAlign_;
    if (aligned > 0) flushAligned(aligned);
  }
  // The tail is shorter than one aligned block (or everything, once direct writes were refused).
  const size_t tail = used_;
  used_ = 0;
  leaveDirect();
  if (tail > 0) writeBuffered(buf_.get(), tail);
  fd_ = -1;
}

// Writes the first `bytes` of the buffer (a multiple of the offset alignment) direct and moves
// whatever follows them to the front.
void DirectFileWriter::flushAligned(size_t bytes) {
  size_t done = 0;
  while (done < bytes) {
    ssize_t n = ::write(fd_, buf_.get() + done, bytes - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL) {
      // The filesystem took O_DIRECT on the fd but not this write (a device with stricter
      // alignment than it reported): the rest of this file and every later one go buffered.
      state_ = State::Refused;
      leaveDirect();
      writeBuffered(buf_.get() + done, bytes - done);
      done = bytes;
      break;
    }
    if (n < 0) throwWrite(path_, errno);
    done += static_cast<size_t>(n);
    directBytes_ += static_cast<uint64_t>(n);
    if (done < bytes && (done % offsetAlign_) != 0) {
      // A short direct write ends off alignment (a filesystem almost full); the rest goes
      // buffered, where the error, if there is one, comes out as ENOSPC.
      leaveDirect();
      writeBuffered(buf_.get() + done, bytes - done);
      done = bytes;
      break;
    }
  }
  used_ -= bytes;
  if (used_ > 0) std::memmove(buf_.get(), buf_.get() + bytes, used_);
}

void writeAll(int fd, const char* p, size_t n, std::string_view path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throwWrite(path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void DirectFileWriter::leaveDirect() {
  if (!direct_) return;
  direct_ = false;
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) throwWrite(path_, errno);
}

}  // namespace snapimport::unpack
