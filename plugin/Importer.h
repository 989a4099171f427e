#pragma once
// The remote-snapshot flow (DESIGN "The pull, step by step"; reference §2.3). When containerd
// Prepares a layer with CRI labels, the importer fetches and unpacks that layer (and prefetches
// every later layer of the image in parallel), verifies it, and commits it as a COMMITTED snapshot
// on exactly the parent containerd expects. Prepare then answers AlreadyExists and containerd skips
// its own fetch and apply. Whenever the importer cannot help, Prepare falls back to the plain
// overlay snapshotter: a pull never fails because of the importer. The one exception is a full
// disk, where containerd's own path would fail the same way after downloading the layer again.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ImportLabels.h"
#include "LayerFetcher.h"
#include "LayerPriority.h"
#include "StagingWriteback.h"
#include "store/SnapshotStore.h"
#include "unpack/Unpacker.h"

namespace snapimport::plugin {

struct ImporterOptions {
  bool enabled = true;
  int maxJobs = 4;  // layer jobs running at once on this node
  // Of those, downloading from one registry host. A layer whose data is all in and unpacked no
  // longer counts while its sync to disk runs: that wait uses neither the registry nor the CPU.
  int maxJobsPerHost = 3;
  // Staged layers nobody claimed (a cancelled pull) are removed by Cleanup after this long.
  std::chrono::seconds stagedGrace{600};
  // A layer import taking longer than this is abandoned (0: no limit).
  std::chrono::milliseconds layerTimeout{0};
  unpack::Limits limits;
  // Files at least this large are written past the page cache (unpack::Options; 0: none).
  uint64_t directWriteMinBytes = unpack::Options{}.directWriteMinBytes;
  // A layer is not even downloaded when the staging filesystem has less free space than its
  // compressed size plus this much: an import must not take the last bytes the database needs
  // to record anything, a removal (kubelet's image GC) included.
  uint64_t stagingReserveBytes = 8 << 20;
  // Synced in the background while a layer job runs (null: each layer's own syncfs only).
  std::shared_ptr<StagingWriteback> writeback;
  // How an unpacked layer's tree (a staged fs/ directory) is made durable before it can be
  // committed. Tests replace it to hold a layer in that step.
  std::function<void(const std::filesystem::path&)> syncStaged = unpack::syncFilesystem;
  // The nice value added to running layers other than the one with the longest estimated time
  // left (LayerPriority); 0: every layer at the daemon's own priority.
  int backgroundLayerNice = 19;
};

class Importer {
 public:
  enum class Outcome { Imported, Fallback };

  Importer(std::shared_ptr<store::SnapshotStore> store, std::shared_ptr<LayerFetcher> fetcher,
           ImporterOptions options);
  ~Importer();
  Importer(const Importer&) = delete;
  Importer& operator=(const Importer&) = delete;

  // Imported: a COMMITTED snapshot labelled with the target chain ID now exists on `parent`, and
  // Prepare must answer AlreadyExists. Fallback: Prepare must create an ordinary active snapshot.
  // Throws only store::StoreError ResourceExhausted, when the layer did not fit on the root's
  // filesystem: a fallback would have containerd download the same layer into the same full
  // disk, so the Prepare (and the pull) fails with the error instead.
  Outcome prepare(const std::string& key, const std::string& parent, const store::Labels& labels);

  // Removes staged layers nobody claimed within the grace period. Returns how many.
  size_t cleanupStaged(bool all = false);

  // Counters for tests and `status`: layers imported, fallbacks taken.
  struct Stats {
    uint64_t imported = 0, deduplicated = 0, fallbacks = 0, jobsRun = 0;
  };
  Stats stats() const;

 private:
  struct Job;
  struct CachedImage;

  Outcome importLayer(const ImportLabels& l, const std::string& parent,
                      const store::Labels& labels);
  std::shared_ptr<CachedImage> describe(const ImportLabels& l);
  void schedule(const ImportLabels& l, const CachedImage& image);
  std::shared_ptr<Job> ensureJobLocked(const std::string& imageRef, const LayerDescriptor& desc);
  void worker();
  // releaseHost: called once the layer's bytes are all in, before its sync to disk, so that the
  // next layer from the same registry can start meanwhile (the worker calls it otherwise).
  void runJob(Job& job, const std::function<void()>& releaseHost);
  Outcome fallback(const std::string& reason, const std::string& why, const ImportLabels* l);
  bool chainCommitted(const std::string& chainId);

  std::shared_ptr<store::SnapshotStore> store_;
  std::shared_ptr<LayerFetcher> fetcher_;
  ImporterOptions options_;
  std::shared_ptr<LayerPriority> priorities_;  // null when backgroundLayerNice is 0

  mutable std::mutex mu_;
  std::condition_variable workCv_;  // workers wait for runnable jobs
  std::condition_variable doneCv_;  // Prepare waits for its job
  bool stopping_ = false;
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // by layer digest, until claimed
  std::deque<std::shared_ptr<Job>> queue_;
  std::map<std::string, int> runningPerHost_;
  // Failed imports removing their staging directory now: the space they give back is not space
  // freed since a no_space failure (see runJob).
  int releasingStaged_ = 0;
  std::map<std::string, std::shared_ptr<CachedImage>> images_;  // by manifest digest
  std::map<std::string, std::string> loggedFallbacks_;          // reason+image already logged
  Stats stats_;
  std::vector<std::thread> workers_;
};

// The importer's commit of a verified staged layer (a directory holding fs/), shared with every
// other way a layer gets staged (WriteImporter): implicit directories take their metadata from
// the chain below `parent`, then the tree becomes COMMITTED snapshot "snapimport/<chainId>" (or
// "...@<ns>" when that name is taken by the same chain on another parent) in one transaction
// with the rename. `labels` must carry containerd.io/snapshot.ref = chainId. Throws StoreError.
// Removes a staging or snapshot tree, ignoring errors (an empty path does nothing): for paths
// whose removal failing leaves only what Cleanup removes later.
void removeQuietly(const std::filesystem::path& p);

// Creates <stagingDir>/<prefix>XXXXXX holding an empty fs/ (0755): where one layer is built
// before it is renamed into a snapshot. Throws naming the path that could not be made.
std::filesystem::path makeStagingDir(const std::filesystem::path& stagingDir,
                                     const std::string& prefix);

store::SnapshotInfo commitImportedLayer(store::SnapshotStore& store, const std::string& chainId,
                                        const std::string& parent, const store::Labels& labels,
                                        const std::filesystem::path& staged,
                                        const std::vector<std::string>& implicitDirs);

}  // namespace snapimport::plugin
