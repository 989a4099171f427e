#include "DiskUsage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "StoreError.h"

namespace snapimport::store {
namespace {

struct Walker {
  std::set<std::pair<dev_t, ino_t>> seen;
  Usage usage;

  void account(const struct stat& st) {
    if (seen.emplace(st.st_dev, st.st_ino).second)
      usage.size += static_cast<int64_t>(st.st_blocks) * 512;
  }

  // dirfd is owned by this call.
  void walk(int dirfd, const std::string& where) {
    DIR* dir = fdopendir(dirfd);
    if (!dir) {
      int e = errno;
      close(dirfd);
      fail(ErrorClass::Internal, "read directory " + where + ": " + std::strerror(e));
    }
    while (struct dirent* ent = readdir(dir)) {
      if (!std::strcmp(ent->d_name, ".") || !std::strcmp(ent->d_name, "..")) continue;
      struct stat st {};
      if (fstatat(dirfd, ent->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed while we walked
        int e = errno;
        closedir(dir);
        fail(ErrorClass::Internal, "stat " + where + "/" + ent->d_name + ": " + std::strerror(e));
      }
      account(st);
      if (S_ISDIR(st.st_mode)) {
        int child = openat(dirfd, ent->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
          if (errno == ENOENT) continue;
          int e = errno;
          closedir(dir);
          fail(ErrorClass::Internal,
               "open directory " + where + "/" + ent->d_name + ": " + std::strerror(e));
        }
        try {
          walk(child, where + "/" + ent->d_name);
        } catch (...) {
          closedir(dir);
          throw;
        }
      }
    }
    closedir(dir);
  }
};

}  // namespace

Usage diskUsage(const std::filesystem::path& root) {
  Walker w;
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    fail(ErrorClass::Internal, "open " + root.string() + " for usage: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    fail(ErrorClass::Internal, "stat " + root.string() + ": " + std::strerror(e));
  }
  w.account(st);
  w.walk(fd, root.string());
  w.usage.inodes = static_cast<int64_t>(w.seen.size());
  return w.usage;
}

}  // namespace snapimport::store
