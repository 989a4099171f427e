#include "unpack/SecureRoot.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "unpack/Unpacker.h"

namespace snapimport::unpack {
namespace {

constexpr int kMaxSymlinkHops = 40;  // as the kernel's MAXSYMLINKS
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;

std::string errnoText(int err) { return std::strerror(err); }

void splitInto(std::string_view path, std::deque<std::string>& out, bool front) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) parts.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  if (front) {
    out.insert(out.begin(), parts.begin(), parts.end());
  } else {
    out.insert(out.end(), parts.begin(), parts.end());
  }
}

std::string joinPath(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out.push_back('/');
    out += n;
  }
  return out;
}

// Names in `fd`, with whether each is (or may be) a directory.
struct Child {
  std::string name;
  bool dir;
};
std::vector<Child> listDir(int fd) {
  int dupfd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) throw UnpackError("cannot dup directory fd: " + errnoText(errno));
  DIR* d = ::fdopendir(dupfd);
  if (!d) {
    int e = errno;
    ::close(dupfd);
    throw UnpackError("cannot list directory: " + errnoText(e));
  }
  ::rewinddir(d);
  std::vector<Child> out;
  errno = 0;
  while (struct dirent* de = ::readdir(d)) {
    std::string_view n = de->d_name;
    if (n == "." || n == "..") continue;
    out.push_back({std::string(n), de->d_type == DT_DIR || de->d_type == DT_UNKNOWN});
  }
  ::closedir(d);
  return out;
}

}  // namespace

SecureRoot::SecureRoot(const std::filesystem::path& dir) : path_(dir) {
  root_.reset(::open(dir.c_str(), kDirFlags | O_NOFOLLOW));
  if (!root_) {
    throw UnpackError("cannot open target directory " + dir.string() + ": " + errnoText(errno));
  }
}

int SecureRoot::openat2Dir(std::string_view rel) {
  struct open_how how {};
  how.flags = kDirFlags;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  std::string p(rel);
  for (int attempt = 0; attempt < 16; ++attempt) {
    long fd = ::syscall(SYS_openat2, root_.get(), p.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a rename raced the lookup; the kernel asks us to retry.
    if (errno != EAGAIN) break;
  }
  if (errno == ENOSYS || errno == EPERM) openat2_ = false;  // old kernel or seccomp
  return -1;
}

Fd SecureRoot::walk(std::string_view rel, bool create, std::vector<std::string>* created,
                    int* err) {
  std::deque<std::string> todo;
  splitInto(rel, todo, false);
  std::vector<std::string> names;  // resolved real directories below the root
  Fd cur;                          // empty = the root
  int hops = 0;
  auto curFd = [&] { return cur ? cur.get() : root_.get(); };
  // Re-opens the directory at `names` from the root. Every name was verified to be a real
  // directory, so no symlink is crossed; only needed after "..", which the walk interprets
  // lexically instead of asking the kernel (so it can never climb out).
  auto reopen = [&]() -> bool {
    cur.reset();
    for (const auto& n : names) {
      Fd next(::openat(curFd(), n.c_str(), kDirFlags | O_NOFOLLOW));
      if (!next) return false;
      cur = std::move(next);
    }
    return true;
  };
  while (!todo.empty()) {
    std::string comp = std::move(todo.front());
    todo.pop_front();
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (!names.empty()) {
        names.pop_back();
        if (!reopen()) {
          *err = errno;
          return Fd();
        }
      }
      continue;
    }
    Fd next(::openat(curFd(), comp.c_str(), kDirFlags | O_NOFOLLOW));
    if (!next && errno == ENOENT && create) {
      if (::mkdirat(curFd(), comp.c_str(), 0755) == 0) {
        names.push_back(comp);
        if (created) created->push_back(joinPath(names));
        names.pop_back();
      } else if (errno != EEXIST) {
        *err = errno;
        return Fd();
      }
      next.reset(::openat(curFd(), comp.c_str(), kDirFlags | O_NOFOLLOW));
    }
    if (!next) {
      int e = errno;
      if (e != ELOOP && e != ENOTDIR) {
        *err = e;
        return Fd();
      }
      // Not a directory: follow it only if it is a symlink, and only inside the root.
      char target[4097];
      ssize_t n = ::readlinkat(curFd(), comp.c_str(), target, sizeof target - 1);
      if (n < 0) {
        *err = ENOTDIR;
        return Fd();
      }
      if (++hops > kMaxSymlinkHops || n == sizeof target - 1) {
        *err = ELOOP;
        return Fd();
      }
      std::string_view t(target, static_cast<size_t>(n));
      if (t.empty()) {
        *err = ENOENT;
        return Fd();
      }
      if (t.front() == '/') {
        names.clear();
        cur.reset();
      }
      splitInto(t, todo, true);
      continue;
    }
    names.push_back(std::move(comp));
    cur = std::move(next);
  }
  if (!cur) {
    Fd root(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    if (!root) *err = errno;
    return root;
  }
  return cur;
}

std::shared_ptr<Fd> SecureRoot::dir(std::string_view rel, bool create,
                                    std::vector<std::string>* created) {
  int err = 0;
  auto fd = tryDir(rel, create, created, err);
  if (!fd) {
    throw UnpackError("cannot resolve directory \"" + std::string(rel) +
                      "\" inside the layer root: " + errnoText(err));
  }
  return fd;
}

std::shared_ptr<Fd> SecureRoot::tryDir(std::string_view rel, bool create,
                                       std::vector<std::string>* created, int& err) {
  std::string key(rel);
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  int fd = -1;
  err = 0;
  if (rel.empty()) {
    fd = ::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0);
    err = errno;
  } else if (openat2_) {
    fd = openat2Dir(rel);
    err = errno;
  }
  if (fd < 0 && (!openat2_ || (err == ENOENT && create))) {
    err = 0;
    Fd walked = walk(rel, create, created, &err);
    fd = walked.release();
  }
  if (fd < 0) return nullptr;
  auto shared = std::make_shared<Fd>(fd);
  remember(key, shared);
  return shared;
}

std::shared_ptr<Fd> SecureRoot::findDir(std::string_view rel) {
  try {
    return dir(rel, false, nullptr);
  } catch (const UnpackError&) {
    return nullptr;
  }
}

void SecureRoot::remember(const std::string& rel, std::shared_ptr<Fd> fd) {
  if (auto it = index_.find(rel); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.emplace_front(rel, std::move(fd));
  index_[rel] = lru_.begin();
  if (lru_.size() > kCacheSize) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void SecureRoot::forget(std::string_view rel) {
  for (auto it = lru_.begin(); it != lru_.end();) {
    const std::string& k = it->first;
    bool below = k.size() >= rel.size() && k.compare(0, rel.size(), rel) == 0 &&
                 (k.size() == rel.size() || k[rel.size()] == '/' || rel.empty());
    if (below) {
      index_.erase(k);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

void SecureRoot::forgetAll() {
  lru_.clear();
  index_.clear();
}

bool SecureRoot::isEmptyDir(int fd) { return listDir(fd).empty(); }

void SecureRoot::removeAt(int parent, const std::string& name) {
  if (::unlinkat(parent, name.c_str(), 0) == 0) return;
  if (errno == ENOENT) return;
  if (errno != EISDIR) {
    throw UnpackError("cannot remove \"" + name + "\": " + errnoText(errno));
  }
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0) return;
  Fd d(::openat(parent, name.c_str(), kDirFlags | O_NOFOLLOW));
  if (!d)
    throw UnpackError("cannot open directory \"" + name + "\" to remove it: " + errnoText(errno));
  emptyDir(d.get());
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0) {
    throw UnpackError("cannot remove directory \"" + name + "\": " + errnoText(errno));
  }
}

void SecureRoot::emptyDir(int fd) {
  // Depth-first with one open fd: each level keeps the names of its non-empty subdirectories,
  // descends into them one at a time and climbs back with "..". ".." is safe here because we are
  // deleting our own private tree; nothing can move a directory under us.
  struct Level {
    std::vector<std::string> subdirs;
    std::string self;
  };
  auto scan = [](int dfd) {
    std::vector<std::string> subdirs;
    for (auto& c : listDir(dfd)) {
      if (::unlinkat(dfd, c.name.c_str(), 0) == 0) continue;
      if (errno == ENOENT) continue;
      if (errno != EISDIR)
        throw UnpackError("cannot remove \"" + c.name + "\": " + errnoText(errno));
      if (::unlinkat(dfd, c.name.c_str(), AT_REMOVEDIR) == 0) continue;
      if (errno != ENOTEMPTY && errno != EEXIST) {
        throw UnpackError("cannot remove directory \"" + c.name + "\": " + errnoText(errno));
      }
      subdirs.push_back(std::move(c.name));
    }
    return subdirs;
  };
  Fd cur(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!cur) throw UnpackError("cannot dup directory fd: " + errnoText(errno));
  std::vector<Level> stack;
  stack.push_back({scan(cur.get()), ""});
  while (!stack.empty()) {
    Level& top = stack.back();
    if (!top.subdirs.empty()) {
      std::string child = std::move(top.subdirs.back());
      top.subdirs.pop_back();
      Fd next(::openat(cur.get(), child.c_str(), kDirFlags | O_NOFOLLOW));
      if (!next)
        throw UnpackError("cannot open \"" + child + "\" to remove it: " + errnoText(errno));
      cur = std::move(next);
      auto subdirs = scan(cur.get());
      stack.push_back({std::move(subdirs), std::move(child)});
      continue;
    }
    std::string self = std::move(top.self);
    stack.pop_back();
    if (stack.empty()) break;
    Fd up(::openat(cur.get(), "..", kDirFlags));
    if (!up)
      throw UnpackError("cannot climb back while removing \"" + self + "\": " + errnoText(errno));
    cur = std::move(up);
    if (::unlinkat(cur.get(), self.c_str(), AT_REMOVEDIR) != 0) {
      throw UnpackError("cannot remove directory \"" + self + "\": " + errnoText(errno));
    }
  }
}

}  // namespace snapimport::unpack
