#pragma once
// Writes the data of large regular files with O_DIRECT, in aligned chunks from one buffer.
//
// Why: a layer's big files are written once and read back, if at all, only when a container
// starts. Through the page cache every byte is copied into a newly allocated page, dirtied, and
// then written back by the kernel's flusher, which no process is charged for and which competes
// with the unpack for the same cores; and a pull fills the node's page cache with the image,
// pushing out the pages of the workloads already running. With O_DIRECT the bytes go from this
// writer's buffer to the device: the copy into the buffer replaces the copy into the page cache,
// the write-back disappears, and the import's final syncfs has only metadata and file tails left
// to write.
//
// Only what the filesystem allows goes direct: statx(STATX_DIOALIGN) of the first file gives the
// offset and memory alignment (filesystems report it for regular files only), and a filesystem
// that reports none, refuses O_DIRECT on the fd or refuses a direct write gets ordinary writes
// from then on. A file's last bytes that do not fill an aligned block are written through the
// page cache, so the file's size is exact without a truncate.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace snapimport::unpack {

// Writes all `n` bytes to `fd` as it is opened (EINTR retried), for files and tails that go
// through the page cache. Throws UnpackError "cannot write "<path>": <strerror>".
void writeAll(int fd, const char* p, size_t n, std::string_view path);

class DirectFileWriter {
 public:
  // `chunkBytes` is rounded up to the filesystem's alignment; the probe and the buffer wait for the
  // first file, so a layer without large files costs nothing.
  explicit DirectFileWriter(size_t chunkBytes);
  ~DirectFileWriter();
  DirectFileWriter(const DirectFileWriter&) = delete;
  DirectFileWriter& operator=(const DirectFileWriter&) = delete;

  // Starts a file: `fd` is a new, empty file opened for writing (without O_DIRECT), `path` its name
  // for errors. Returns false when O_DIRECT cannot be turned on for it; the caller then writes the
  // file itself. After a refusal (or a filesystem without direct I/O) no later file is tried.
  bool begin(int fd, std::string path);
  // Appends data. Throws UnpackError (with errno text and the path) when a write fails.
  void append(const void* data, size_t size);
  // Writes what is left and leaves the fd without O_DIRECT. Throws like append.
  void finish();

  uint64_t directBytes() const { return directBytes_; }

 private:
  void flushAligned(size_t bytes);
  void writeBuffered(const char* p, size_t n) { writeAll(fd_, p, n, path_); }
  void leaveDirect();

  bool probe(int fd);

  enum class State { Unprobed, Usable, Refused } state_ = State::Unprobed;
  size_t offsetAlign_ = 0, chunk_ = 0;
  struct FreeDeleter {
    void operator()(char* p) const;
  };
  std::unique_ptr<char, FreeDeleter> buf_;
  size_t used_ = 0;
  int fd_ = -1;
  bool direct_ = false;
  std::string path_;
  uint64_t directBytes_ = 0;
};

}  // namespace snapimport::unpack
