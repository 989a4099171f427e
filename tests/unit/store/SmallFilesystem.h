#pragma once
// A small tmpfs a test can really fill, so "no space left on device" comes from the kernel and not
// from a mock. It is mounted in a private mount namespace of the test process (unshare), so it
// disappears with the process even if the test crashes. Mounting needs CAP_SYS_ADMIN; without it
// mounted() is false and whyNot() says why, for GTEST_SKIP.
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

namespace snapimport::testing {

class SmallFilesystem {
 public:
  explicit SmallFilesystem(uint64_t bytes) {
    // Threads inherit the namespace of the thread that creates them, so this must run before the
    // test starts any (an Importer's workers).
    static const std::string privateNs = []() -> std::string {
      if (::unshare(CLONE_NEWNS) != 0)
        return std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
      if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        return std::string("make / private: ") + std::strerror(errno);
      }
      return "";
    }();
    if (!privateNs.empty()) {
      why_ = privateNs;
      return;
    }
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "snapimport-smallfs-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      why_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    path_ = tmpl;
    std::string opts = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::mount("snapimport-test", path_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      why_ = "mount a tmpfs: " + std::string(std::strerror(errno));
      return;
    }
    mounted_ = true;
  }
  ~SmallFilesystem() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  SmallFilesystem(const SmallFilesystem&) = delete;
  SmallFilesystem& operator=(const SmallFilesystem&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& whyNot() const { return why_; }
  const std::filesystem::path& path() const { return path_; }

  uint64_t freeBytes() const {
    struct statvfs st {};
    if (::statvfs(path_.c_str(), &st) != 0) return 0;
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }

  // Writes a filler file until at most `leave` bytes (rounded to pages) are free; with 0, until
  // the kernel says ENOSPC.
  void fill(uint64_t leave = 0) {
    int fd = ::open(filler().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    std::string chunk(4096, 'f');
    while (freeBytes() > leave) {
      if (::write(fd, chunk.data(), chunk.size()) < 0) break;
    }
    ::close(fd);
  }
  void freeFiller() { ::unlink(filler().c_str()); }

 private:
  std::filesystem::path filler() const { return path_ / "filler"; }

  std::filesystem::path path_;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace snapimport::testing
