#pragma once
// Background write-back of the staging filesystem while layers unpack into it.
//
// Nothing writes a layer's pages back before its own syncfs: the kernel's flusher waits until
// 10 % of memory is dirty or the pages are 30 s old, more than a whole image on most nodes. So
// without this the write-back of every running import came at the end, done by the filesystem's
// flusher while the unpacks had finished and the cores idled (a fifth of a small-files image's
// import on two cores). Syncing every interval while an unpack runs spreads that work over the
// import; each layer's own syncfs before its commit then finds little left. It is a scheduling
// aid only: durability still comes from that per-layer syncfs.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

namespace snapimport::plugin {

class StagingWriteback {
 public:
  // dir: a directory on the staging filesystem. interval > 0.
  StagingWriteback(std::filesystem::path dir, std::chrono::milliseconds interval);
  ~StagingWriteback();
  StagingWriteback(const StagingWriteback&) = delete;
  StagingWriteback& operator=(const StagingWriteback&) = delete;

  // While one of these lives (an unpack writing into the staging filesystem), the filesystem is
  // synced every interval. A default-constructed one holds nothing.
  class Busy {
   public:
    Busy() = default;
    Busy(Busy&& o) noexcept;
    Busy& operator=(Busy&& o) noexcept;
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;
    ~Busy();

   private:
    friend class StagingWriteback;
    explicit Busy(StagingWriteback* owner) : owner_(owner) {}
    StagingWriteback* owner_ = nullptr;
  };
  Busy busy();
  // busy() of `writeback`, or a Busy holding nothing when there is none (write-back off).
  static Busy busyOf(const std::shared_ptr<StagingWriteback>& writeback);

  // How many background syncs have run (for tests).
  uint64_t syncs() const;

 private:
  void run();
  void leave();

  const std::filesystem::path dir_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int busy_ = 0;
  bool stopping_ = false;
  uint64_t syncs_ = 0;
  bool warned_ = false;  // a failing sync is logged once, not every interval
  std::thread thread_;
};

}  // namespace snapimport::plugin
