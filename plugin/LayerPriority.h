#pragma once
// Scheduling priority of the layers a pull unpacks at once.
//
// Several layers unpacking together share the cores evenly, thread by thread. The layer that costs
// the most per byte (tens of thousands of small files: the kernel's work per file) then ends last,
// alone, on one core, while the other cores idle: on the two-core bench image that tail was a
// quarter of the pull. LayerPriority keeps the layer with the longest estimated time left at the
// process's own nice value and lowers every other running layer's threads by `backgroundNice`,
// deciding again every `period`. The favoured layer runs as if alone and the others use what it
// leaves, so the layers tend to end together and the pull ends when the CPU work does.
//
// Nice values are per thread on Linux; the layer's threads are the worker that calls the unpack
// (its tar writer) and the unpack's pipeline threads, which report themselves through
// unpack::ThreadObserver. Giving a thread its priority back needs CAP_SYS_NICE (or RLIMIT_NICE):
// without it LayerPriority is off from the start, rather than leaving threads lowered. It is off
// as well when the daemon has no cpu cgroup of its own (CpuCgroup): there a lowered thread would
// lose its CPU to the node's workloads, not only to the favoured layer.
#include <sys/types.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "unpack/Unpacker.h"

namespace snapimport::plugin {

class LayerPriority : public std::enable_shared_from_this<LayerPriority> {
 public:
  struct Options {
    int backgroundNice = 19;  // added to the nice value of the layers not favoured (capped at 19)
    std::chrono::milliseconds period{100};
    // Whether the cpu controller gives the daemon a cgroup of its own (CpuCgroup says why nice
    // is safe only then); unset: CpuCgroup::ofThisProcess() decides.
    std::optional<bool> ownCpuCgroup;
  };

  // What the policy knows of one running layer, over the last `window` decisions.
  struct Progress {
    // CPU time its busiest thread (its bottleneck) spent meanwhile, whatever share of the cores
    // it got, and the compressed bytes read meanwhile.
    double recentCpuSeconds = 0;
    uint64_t recentBytes = 0;
    uint64_t doneBytes = 0, totalBytes = 0;  // compressed bytes read so far, of the blob's size
  };
  // The layer to favour: the longest estimated time left if it ran alone, what is left times the
  // recent CPU per byte. Recent, because a layer's cost is uneven (a stretch of small files costs
  // ten times a stretch of large ones per byte); CPU rather than wall time, so that being favoured
  // or not does not change the estimate. A layer with bytes left whose bottleneck worked without
  // reading more (the ring in front of the writer full) counts as the costliest. Only a layer
  // that stands out is favoured: one whose estimate is at least 25% longer than every other's
  // becomes the favourite, and stays it while it is at least 5% longer. Among layers of about
  // the same cost (the small-files bench image's four) nobody is favoured: they end together
  // anyway, and taking turns only cost 1-2%. Layers that used no CPU (waiting for the network)
  // or have no size have no estimate; nullopt below two estimates.
  static std::optional<size_t> favourite(const std::vector<Progress>& layers,
                                         std::optional<size_t> current);

  // One layer's registration; destroyed on the thread that called start().
  class Layer : public unpack::ThreadObserver {
   public:
    ~Layer() override;  // unregisters; the calling thread gets the normal priority back
    void threadStarted() override;
    void threadEnding() override;
    void writerWaited(std::chrono::nanoseconds d) override {
      waitedNanos_.fetch_add(static_cast<uint64_t>(d.count()), std::memory_order_relaxed);
    }

   private:
    friend class LayerPriority;
    Layer(std::shared_ptr<LayerPriority> owner, uint64_t id) : owner_(std::move(owner)), id_(id) {}
    std::shared_ptr<LayerPriority> owner_;
    uint64_t id_;
    std::atomic<uint64_t> waitedNanos_{0};
  };

  // Off when this process cannot give a thread its nice value back.
  static std::shared_ptr<LayerPriority> create(Options options);
  ~LayerPriority();
  LayerPriority(const LayerPriority&) = delete;
  LayerPriority& operator=(const LayerPriority&) = delete;

  bool enabled() const { return enabled_; }
  // A layer (`name`: its digest, for the log) about to unpack on the calling thread; `done` counts
  // the compressed bytes read of `totalBytes` and must outlive the returned registration. Null when
  // disabled.
  std::unique_ptr<Layer> start(std::string name, uint64_t totalBytes,
                               const std::atomic<uint64_t>& done);

  // Times a thread's nice value was changed (for tests and the bench's profile).
  uint64_t changes();

 private:
  explicit LayerPriority(Options options);
  void run();
  void decideLocked();
  void setLocked(pid_t tid, int nice);
  void addThread(uint64_t id, pid_t tid, clockid_t cpuClock);
  void removeThread(uint64_t id, pid_t tid);
  void finish(uint64_t id);

  struct Running {
    std::string name;  // for the log
    uint64_t totalBytes;
    const std::atomic<uint64_t>* done;
    struct Thread {
      pid_t tid;
      clockid_t cpuClock;
      double cpuAtStart;  // a worker runs job after job; pipeline threads start near 0
    };
    std::vector<Thread> threads;
    pid_t caller;
    // The caller is the tar writer: its bottleneck time is its wall time minus its waits for data
    // and minus its waits for a core (schedstat), so that page-cache and journal waits count.
    std::chrono::steady_clock::time_point started;
    double callerRunqueueAtStart = 0;
    const std::atomic<uint64_t>* writerWaitedNanos = nullptr;
    struct Sample {
      double busiestCpu;
      uint64_t done;
    };
    std::vector<Sample> samples;  // the last kWindow decisions', oldest first
  };
  static constexpr size_t kWindow = 5;
  const Options options_;
  int normalNice_ = 0;
  int backgroundNice_ =
      0;  // the nice value of the layers not favoured: normal + option, at most 19
  bool enabled_ = false;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  uint64_t nextId_ = 0;
  std::map<uint64_t, Running> running_;
  std::map<pid_t, int> applied_;  // threads whose nice value differs from normalNice_
  std::optional<uint64_t> favoured_;
  uint64_t changes_ = 0;
  std::thread thread_;
};

}  // namespace snapimport::plugin
