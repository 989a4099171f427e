#include "Importer.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "ChainId.h"
#include "common/ImportProgress.h"
#include "common/Log.h"
#include "common/Metrics.h"
#include "store/NoSpace.h"
#include "store/StoreError.h"

namespace snapimport::plugin {
namespace fs = std::filesystem;
using progress::LayerState;

struct Importer::Job {
  std::string imageRef;
  std::string host;
  LayerDescriptor desc;
  enum class State { Queued, Running, Done, Failed } state = State::Queued;
  bool claimed = false;  // one Prepare took the staged layer to commit it
  bool settled = false;  // ... and has committed it or given up; the job has left jobs_
  fs::path staged;       // holds fs/ once Done
  unpack::Result result;
  std::string error;
  std::string reason;
  uint64_t freeAtFailure = 0;  // no_space: bytes free on the staging filesystem afterwards
  std::chrono::steady_clock::time_point finishedAt;
  std::atomic<bool> cancel{false};
};

struct Importer::CachedImage {
  ImageLayers layers;
  std::vector<std::string> chainIds;
  bool progressStarted = false;
};

namespace {

// Counts bytes as they stream through, for progress and metrics, and enforces the per-layer
// deadline (the transport's stall timeout covers a silent registry; this covers a slow one).
class CountingSource : public unpack::Source {
 public:
  CountingSource(unpack::Source& inner, std::string digest, std::chrono::milliseconds timeout,
                 const std::atomic<uint64_t>& written, std::atomic<uint64_t>& fetched)
      : inner_(inner),
        digest_(std::move(digest)),
        timeout_(timeout),
        start_(std::chrono::steady_clock::now()),
        written_(written),
        fetched_(fetched) {}
  size_t read(void* buf, size_t len) override {
    auto now = std::chrono::steady_clock::now();
    if (timeout_.count() > 0 && now - start_ > timeout_) {
      throw FetchError("timeout", "layer " + digest_ + " took longer than the layer timeout of " +
                                      std::to_string(timeout_.count() / 1000) + "s");
    }
    size_t n = inner_.read(buf, len);
    total_ += n;
    fetched_.store(total_, std::memory_order_relaxed);
    metrics::Metrics::daemon().fetchedBytes.Increment(static_cast<double>(n));
    // Progress is coarse on purpose: one update per 4 MiB, or per quarter second on a slow
    // registry, keeps the tracker's lock cold and `snapimport status` still moving.
    if (total_ - reported_ >= (4u << 20) || now - reportedAt_ >= std::chrono::milliseconds(250) ||
        n == 0) {
      reported_ = total_;
      reportedAt_ = now;
      progress::ImportProgress::daemon().layerBytes(digest_, total_,
                                                    written_.load(std::memory_order_relaxed));
    }
    return n;
  }

 private:
  unpack::Source& inner_;
  std::string digest_;
  std::chrono::milliseconds timeout_;
  std::chrono::steady_clock::time_point start_;
  const std::atomic<uint64_t>& written_;  // tar bytes the unpacker's writer has consumed
  std::atomic<uint64_t>& fetched_;        // compressed bytes read, for LayerPriority
  uint64_t total_ = 0, reported_ = 0;
  std::chrono::steady_clock::time_point reportedAt_{};
};

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

const char* fallbackReasonFor(const std::string& failure) {
  return failure == "auth" ? "no_credentials" : "import_failed";
}

}  // namespace

Importer::Importer(std::shared_ptr<store::SnapshotStore> store,
                   std::shared_ptr<LayerFetcher> fetcher, ImporterOptions options)
    : store_(std::move(store)), fetcher_(std::move(fetcher)), options_(options) {
  options_.maxJobs = std::max(1, options_.maxJobs);
  options_.maxJobsPerHost = std::max(1, options_.maxJobsPerHost);
  if (options_.backgroundLayerNice > 0 && options_.maxJobs > 1) {
    LayerPriority::Options prio;  // the default period; CpuCgroup decides whether it may run
    prio.backgroundNice = options_.backgroundLayerNice;
    priorities_ = LayerPriority::create(prio);
    if (!priorities_->enabled()) priorities_.reset();
  }
  for (int i = 0; i < options_.maxJobs; ++i) workers_.emplace_back([this] { worker(); });
}

Importer::~Importer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [d, job] : jobs_) job->cancel = true;
  }
  workCv_.notify_all();
  doneCv_.notify_all();
  for (auto& t : workers_) t.join();
  cleanupStaged(true);
}

Importer::Stats Importer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Importer::Outcome Importer::prepare(const std::string& key, const std::string& parent,
                                    const store::Labels& labels) {
  if (!options_.enabled) return fallback("disabled", "import is disabled in the config", nullptr);
  auto l = ImportLabels::from(labels);
  if (!l) {
    // ctr pulls and CRI with annotations off never carry these; that is normal, not news.
    metrics::Metrics::daemon().fallbacks("no_labels").Increment();
    std::lock_guard lock(mu_);
    ++stats_.fallbacks;
    return Outcome::Fallback;
  }
  try {
    Outcome o = importLayer(*l, parent, labels);
    log::debug("import outcome", {{"key", key},
                                  {"layer", l->layerDigest},
                                  {"outcome", o == Outcome::Imported ? "imported" : "fallback"}});
    return o;
  } catch (const store::StoreError& e) {
    if (e.errorClass() == store::ErrorClass::ResourceExhausted) throw;  // see Importer.h
    return fallback("other", e.what(), &*l);
  } catch (const std::exception& e) {
    if (store::mentionsNoSpace(e.what())) {
      // Committing the staged layer (fixing up its directories) ran out of space.
      metrics::Metrics::daemon().noSpaceErrors(store::kAreaImport).Increment();
      throw store::StoreError(store::ErrorClass::ResourceExhausted,
                              "import of layer " + l->layerDigest + " failed: " + e.what());
    }
    return fallback("other", e.what(), &*l);
  }
}

Importer::Outcome Importer::fallback(const std::string& reason, const std::string& why,
                                     const ImportLabels* l) {
  metrics::Metrics::daemon().fallbacks(reason).Increment();
  std::string image = l ? l->imageRef : "";
  bool first;
  {
    std::lock_guard lock(mu_);
    ++stats_.fallbacks;
    first = loggedFallbacks_.emplace(reason + "\n" + image, why).second;
    if (loggedFallbacks_.size() > 4096) loggedFallbacks_.clear();
  }
  if (l) progress::ImportProgress::daemon().layerState(l->layerDigest, LayerState::Fallback, why);
  if (first) {
    std::string msg = reason == "no_credentials"
                          ? "no usable registry credentials for this image; containerd will fetch "
                            "its layers itself"
                          : "layer falls back to containerd's own fetch and apply";
    log::warn(
        msg,
        {{"reason", reason}, {"image", image}, {"layer", l ? l->layerDigest : ""}, {"error", why}});
  }
  return Outcome::Fallback;
}

std::shared_ptr<Importer::CachedImage> Importer::describe(const ImportLabels& l) {
  {
    std::lock_guard lock(mu_);
    auto it = images_.find(l.manifestDigest);
    if (it != images_.end()) return it->second;
  }
  auto image = std::make_shared<CachedImage>();
  image->layers = fetcher_->describe(l.imageRef, l.manifestDigest);
  if (image->layers.diffIds.size() != image->layers.layers.size()) {
    throw FetchError("verify", "image " + l.imageRef + " config lists " +
                                   std::to_string(image->layers.diffIds.size()) + " diff_ids for " +
                                   std::to_string(image->layers.layers.size()) + " layers");
  }
  image->chainIds = chainIds(image->layers.diffIds);
  std::lock_guard lock(mu_);
  // Bounded: a node sees a modest number of distinct manifests between restarts.
  if (images_.size() > 1024) images_.clear();
  return images_.emplace(l.manifestDigest, image).first->second;
}

bool Importer::chainCommitted(const std::string& chainId) {
  bool found = false;
  store_->list(store::Filter::parse(std::string("labels.\"") + kLabelSnapshotRef +
                                    "\"==" + chainId + ",kind==committed"),
               [&](const store::SnapshotInfo&) { found = true; });
  return found;
}

std::shared_ptr<Importer::Job> Importer::ensureJobLocked(const std::string& imageRef,
                                                         const LayerDescriptor& desc) {
  auto it = jobs_.find(desc.digest);
  if (it != jobs_.end()) return it->second;
  auto job = std::make_shared<Job>();
  job->imageRef = imageRef;
  job->host = fetcher_->hostOf(imageRef);
  job->desc = desc;
  jobs_.emplace(desc.digest, job);
  queue_.push_back(job);
  workCv_.notify_one();
  return job;
}

void Importer::schedule(const ImportLabels& l, const CachedImage& image) {
  std::vector<std::pair<std::string, uint64_t>> all;
  for (const auto& d : image.layers.layers)
    all.emplace_back(d.digest, static_cast<uint64_t>(d.size));
  // Decide what to prefetch before taking the lock: chainCommitted reads the store.
  std::vector<LayerDescriptor> wanted;
  for (const auto& digest : l.imageLayers) {
    for (size_t i = 0; i < image.layers.layers.size(); ++i) {
      const auto& d = image.layers.layers[i];
      if (d.digest != digest || !unpack::isSupportedMediaType(d.mediaType)) continue;
      if (digest != l.layerDigest && chainCommitted(image.chainIds[i])) continue;
      wanted.push_back(d);
      break;
    }
  }
  std::lock_guard lock(mu_);
  auto it = images_.find(l.manifestDigest);
  if (it != images_.end() && !it->second->progressStarted) {
    it->second->progressStarted = true;
    // Before any job is queued: a worker may pick one up at once, and its first state change
    // ("fetching") is dropped for a layer the tracker does not know yet, leaving `snapimport
    // status` showing it queued for the whole fetch. (ImportProgress is a leaf lock.)
    progress::ImportProgress::daemon().imageStarted(l.imageRef, l.manifestDigest, all);
  }
  for (const auto& d : wanted) ensureJobLocked(l.imageRef, d);
}

Importer::Outcome Importer::importLayer(const ImportLabels& l, const std::string& parent,
                                        const store::Labels& labels) {
  std::shared_ptr<CachedImage> image;
  try {
    image = describe(l);
  } catch (const FetchError& e) {
    metrics::Metrics::daemon().importsFailed(e.reason()).Increment();
    return fallback(fallbackReasonFor(e.reason()), e.what(), &l);
  }
  const auto& layers = image->layers.layers;
  auto pos = std::find_if(layers.begin(), layers.end(),
                          [&](const auto& d) { return d.digest == l.layerDigest; });
  if (pos == layers.end()) {
    return fallback("other", "layer " + l.layerDigest + " is not in manifest " + l.manifestDigest,
                    &l);
  }
  size_t idx = static_cast<size_t>(pos - layers.begin());
  const LayerDescriptor desc = *pos;
  const bool lastLayer = idx + 1 == layers.size();
  auto finishImage = [&] {
    if (lastLayer) progress::ImportProgress::daemon().imageFinished(l.imageRef, l.manifestDigest);
  };
  if (!unpack::isSupportedMediaType(desc.mediaType)) {
    finishImage();
    return fallback("media_type", "layer " + desc.digest + " has media type " + desc.mediaType, &l);
  }
  // The chain ID containerd asks for must be the one the config's diff_ids give on this parent;
  // otherwise we would hand containerd a layer it did not ask for.
  std::string parentChain;
  if (!parent.empty()) {
    auto plabels = store_->stat(parent).labels;
    auto it = plabels.find(kLabelSnapshotRef);
    if (it == plabels.end()) {
      finishImage();
      return fallback(
          "other", "parent snapshot \"" + parent + "\" has no " + kLabelSnapshotRef + " label", &l);
    }
    parentChain = it->second;
  }
  if (chainIdOf(parentChain, image->layers.diffIds[idx]) != l.chainId) {
    finishImage();
    return fallback("other",
                    "chain ID " + l.chainId + " does not follow from parent chain " +
                        (parentChain.empty() ? "(none)" : parentChain) +
                        " and the config's diff_id " + image->layers.diffIds[idx],
                    &l);
  }

  bool retriedNoSpace = false;
  for (int attempt = 0; attempt < 3; ++attempt) {
    // Another pull (another namespace, or a retry) may already have committed this chain here.
    if (store_->findCommitted(kLabelSnapshotRef, l.chainId, parent)) {
      std::lock_guard lock(mu_);
      ++stats_.deduplicated;
      finishImage();
      return Outcome::Imported;
    }
    schedule(l, *image);
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      job = ensureJobLocked(l.imageRef, desc);
      doneCv_.wait(lock, [&] {
        return stopping_ || job->state == Job::State::Done || job->state == Job::State::Failed;
      });
      if (stopping_) return fallback("other", "daemon is shutting down", &l);
      if (job->state == Job::State::Failed) {
        auto it = jobs_.find(desc.digest);
        if (it != jobs_.end() && it->second == job) jobs_.erase(it);
        if (job->reason == "no_space") {
          // Space freed since the failure (kubelet's image GC, after an earlier pull failed) of
          // at least the layer's download size: try the layer again, once. Otherwise the disk is
          // as full as it was (the same pull's prefetch failed a moment ago).
          uint64_t need =
              std::max<uint64_t>(static_cast<uint64_t>(std::max<int64_t>(desc.size, 0)), 1 << 20);
          if (!retriedNoSpace && releasingStaged_ == 0 &&
              store::availableBytes(store_->stagingDir()) >= job->freeAtFailure + need) {
            retriedNoSpace = true;
            continue;
          }
          // Falling back would have containerd download the same layer into the same full
          // disk. The pull fails instead; kubelet retries it after its image GC frees space.
          lock.unlock();
          finishImage();
          throw store::StoreError(store::ErrorClass::ResourceExhausted, job->error);
        }
        lock.unlock();
        finishImage();
        return fallback(fallbackReasonFor(job->reason), job->error, &l);
      }
      if (job->claimed) {
        // Another Prepare (another namespace's pull) is committing this layer. Wait until it has
        // committed or given up, then look again: the layer is found committed, or fetched anew.
        // Looking before it settles would find nothing and fetch and commit the layer twice.
        doneCv_.wait(lock, [&] { return stopping_ || job->settled; });
        if (stopping_) return fallback("other", "daemon is shutting down", &l);
        continue;
      }
      job->claimed = true;
      // The job stays in jobs_ until it settles, so a Prepare arriving meanwhile waits for it
      // instead of scheduling a second fetch of the same layer.
    }
    // Whatever happens below, the staged layer is committed or removed, and then the job settles.
    struct Settle {
      Importer& self;
      std::shared_ptr<Job> job;
      ~Settle() {
        std::lock_guard lock(self.mu_);
        job->settled = true;
        auto it = self.jobs_.find(job->desc.digest);
        if (it != self.jobs_.end() && it->second == job) self.jobs_.erase(it);
        self.doneCv_.notify_all();
      }
    } settle{*this, job};

    try {
      if (job->result.diffId != image->layers.diffIds[idx]) {
        metrics::Metrics::daemon().importsFailed("verify").Increment();
        removeQuietly(job->staged);
        finishImage();
        return fallback("import_failed",
                        "layer " + desc.digest + " unpacked to diff_id " + job->result.diffId +
                            " but the image config says " + image->layers.diffIds[idx],
                        &l);
      }
      progress::ImportProgress::daemon().layerState(desc.digest, LayerState::Committing);
      commitImportedLayer(*store_, l.chainId, parent, labels, job->staged,
                          job->result.implicitDirs);
    } catch (...) {
      removeQuietly(job->staged);
      finishImage();
      throw;
    }
    progress::ImportProgress::daemon().layerState(desc.digest, LayerState::Done);
    metrics::Metrics::daemon().importsCompleted.Increment();
    {
      std::lock_guard lock(mu_);
      ++stats_.imported;
    }
    finishImage();
    log::info("imported layer", {{"image", l.imageRef},
                                 {"layer", desc.digest},
                                 {"chain_id", l.chainId},
                                 {"bytes", std::to_string(job->result.compressedBytes)},
                                 {"entries", std::to_string(job->result.entries)}});
    return Outcome::Imported;
  }
  finishImage();
  return fallback("other",
                  "staged layer " + desc.digest + " was claimed by another pull three times", &l);
}

void Importer::worker() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](const auto& j) {
      return runningPerHost_[j->host] < options_.maxJobsPerHost;
    });
    if (it == queue_.end()) {
      workCv_.wait(lock);
      continue;
    }
    std::shared_ptr<Job> job = *it;
    queue_.erase(it);
    job->state = Job::State::Running;
    ++runningPerHost_[job->host];
    ++stats_.jobsRun;
    lock.unlock();
    bool holdsHost = true;  // under mu_
    auto releaseHost = [&] {
      std::lock_guard hostLock(mu_);
      if (!holdsHost) return;
      holdsHost = false;
      --runningPerHost_[job->host];
      workCv_.notify_all();
    };
    {
      auto writing = StagingWriteback::busyOf(options_.writeback);
      runJob(*job, releaseHost);
    }
    releaseHost();  // a job that failed before its sync still holds it
    lock.lock();
    doneCv_.notify_all();
    workCv_.notify_all();
  }
}

void Importer::runJob(Job& job, const std::function<void()>& releaseHost) {
  auto& m = metrics::Metrics::daemon();
  auto& prog = progress::ImportProgress::daemon();
  auto start = std::chrono::steady_clock::now();
  m.importsStarted.Increment();
  m.importJobsInFlight.Increment();
  prog.layerState(job.desc.digest, LayerState::Fetching);
  prog.layerSource(job.desc.digest, "registry", "prepare");
  fs::path staged;
  std::string reason, error;
  unpack::Result result;
  try {
    staged = makeStagingDir(store_->stagingDir(), "layer-");
    // Unpacked, a layer takes at least about its compressed size; when even that does not fit,
    // downloading it would only fill the disk for nothing.
    uint64_t free = store::availableBytes(store_->stagingDir());
    uint64_t need =
        static_cast<uint64_t>(std::max<int64_t>(job.desc.size, 0)) + options_.stagingReserveBytes;
    if (free < need) {
      throw FetchError("no_space", mib(job.desc.size) + " to download, " + mib(free) +
                                       " free of which " + mib(options_.stagingReserveBytes) +
                                       " stay for the database: " + std::strerror(ENOSPC));
    }
    {  // the download and unpack: the source, its connection and the layer's priority
      auto src = fetcher_->open(job.imageRef, job.desc);
      std::atomic<uint64_t> written{0}, fetched{0};
      CountingSource counting(*src, job.desc.digest, options_.layerTimeout, written, fetched);
      std::unique_ptr<LayerPriority::Layer> priority;
      if (priorities_) {
        priority = priorities_->start(
            job.desc.digest, static_cast<uint64_t>(std::max<int64_t>(job.desc.size, 0)), fetched);
      }
      unpack::Options opts;
      opts.threads = priority.get();
      opts.progressBytes = &written;
      opts.userxattr = store_->overlayOptions().userxattr;
      opts.limits = options_.limits;
      opts.directWriteMinBytes = options_.directWriteMinBytes;
      opts.cancel = &job.cancel;
      opts.hashCompressed = !fetcher_->verifiesDigests();
      // The sync comes below, after the checks, once this layer no longer holds a registry slot.
      opts.sync = false;
      result = unpack::unpackLayer(counting, job.desc.mediaType, staged / "fs", opts);
      if (opts.hashCompressed && result.compressedDigest != job.desc.digest) {
        throw FetchError("verify", "layer " + job.desc.digest + " arrived with digest " +
                                       result.compressedDigest);
      }
      if (job.desc.size > 0 && result.compressedBytes != static_cast<uint64_t>(job.desc.size)) {
        throw FetchError("verify", "layer " + job.desc.digest + " arrived with " +
                                       std::to_string(result.compressedBytes) +
                                       " bytes, the manifest says " +
                                       std::to_string(job.desc.size));
      }
    }
    // The layer is all in and checked. Its sync waits for the disk alone, often the longest wait
    // of a big layer on a slow disk: the registry slot goes to the next layer first, so that its
    // download and unpack use the CPU meanwhile. The snapshot is committed only after the sync.
    releaseHost();
    options_.syncStaged(staged / "fs");
  } catch (const FetchError& e) {
    reason = e.reason();
    error = e.what();
  } catch (const unpack::LimitExceeded& e) {
    reason = "limit";
    error = e.what();
  } catch (const unpack::Cancelled& e) {
    reason = "cancelled";
    error = e.what();
  } catch (const unpack::UnpackError& e) {
    reason = "extract";
    error = e.what();
  } catch (const std::exception& e) {
    reason = "internal";
    error = e.what();
  }
  // The unpacker's errors are text; strerror's words in one from writing (not from the registry,
  // whose error bodies may say anything) mean the root's filesystem is full.
  if ((reason == "extract" || reason == "internal") && store::mentionsNoSpace(error))
    reason = "no_space";
  if (reason == "no_space") {
    error = "import of layer " + job.desc.digest + " into " +
            (staged.empty() ? store_->stagingDir() : staged).string() + " failed: " + error;
    m.noSpaceErrors(store::kAreaImport).Increment();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t freeAfter = 0;
  m.importJobsInFlight.Decrement();
  if (reason.empty()) {
    m.writtenBytes.Increment(static_cast<double>(result.uncompressedBytes));
    m.directWrittenBytes.Increment(static_cast<double>(result.directBytes));
    m.layerImportDuration.Observe(seconds);
    prog.layerBytes(job.desc.digest, result.compressedBytes, result.uncompressedBytes);
  } else {
    {
      std::lock_guard lock(mu_);
      ++releasingStaged_;
    }
    removeQuietly(staged);
    staged.clear();
    if (reason == "no_space") {
      // ext4 hands a deleted file's blocks back only when its journal commits. Measured before
      // that, the space this layer's partial tree held would show up a moment later, from any
      // sync (the background write-back, another layer's commit), and look like space freed
      // since the failure: the layer would be downloaded into the full disk again.
      try {
        unpack::syncFilesystem(store_->stagingDir());
      } catch (const std::exception&) {
        // The filesystem is full and failing; the measurement below is the best there is.
      }
    }
    freeAfter = store::availableBytes(store_->stagingDir());
    m.importsFailed(reason).Increment();
    prog.layerState(job.desc.digest, LayerState::Failed, error);
    log::warn("layer import failed", {{"image", job.imageRef},
                                      {"layer", job.desc.digest},
                                      {"reason", reason},
                                      {"error", error}});
  }
  std::lock_guard lock(mu_);
  job.finishedAt = std::chrono::steady_clock::now();
  if (reason.empty()) {
    job.result = std::move(result);
    job.staged = staged;
    job.state = Job::State::Done;
  } else {
    job.reason = reason;
    job.error = error;
    job.freeAtFailure = freeAfter;
    job.state = Job::State::Failed;
    --releasingStaged_;
    // What this failure's staging directory gave back is not space "freed since" an earlier
    // no_space failure (a concurrent layer of the same pull that ran out too): it must not make
    // that layer's Prepare download it again into the same full disk.
    for (auto& [digest, other] : jobs_) {
      if (other.get() != &job && other->state == Job::State::Failed &&
          other->reason == "no_space") {
        other->freeAtFailure = std::max(other->freeAtFailure, freeAfter);
      }
    }
  }
}

void removeQuietly(const fs::path& p) {
  std::error_code ec;
  if (!p.empty()) fs::remove_all(p, ec);
}

fs::path makeStagingDir(const fs::path& stagingDir, const std::string& prefix) {
  std::string tmpl = (stagingDir / (prefix + "XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) {
    throw std::runtime_error("create staging directory in " + stagingDir.string() + ": " +
                             std::strerror(errno));
  }
  fs::path staged = tmpl;
  if (mkdir((staged / "fs").c_str(), 0755) != 0 || chmod((staged / "fs").c_str(), 0755) != 0) {
    const int err = errno;
    removeQuietly(staged);
    throw std::runtime_error("create " + (staged / "fs").string() + ": " + std::strerror(err));
  }
  return staged;
}

store::SnapshotInfo commitImportedLayer(store::SnapshotStore& store, const std::string& chainId,
                                        const std::string& parent, const store::Labels& labels,
                                        const fs::path& staged,
                                        const std::vector<std::string>& implicitDirs) {
  unpack::fixImplicitDirs(staged / "fs", implicitDirs, store.chainFsDirs(parent));
  std::string name = "snapimport/" + chainId;
  try {
    return store.commitStaged(name, parent, labels, staged);
  } catch (const store::StoreError& e) {
    if (e.errorClass() != store::ErrorClass::AlreadyExists) throw;
    // The same chain on a different parent (another namespace's chain) needs its own name.
    return store.commitStaged(name + "@" + std::to_string(store::nowNs()), parent, labels, staged);
  }
}

size_t Importer::cleanupStaged(bool all) {
  std::vector<fs::path> doomed;
  {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      auto& job = it->second;
      bool finished = job->state == Job::State::Done || job->state == Job::State::Failed;
      if (finished && !job->claimed && (all || now - job->finishedAt > options_.stagedGrace)) {
        doomed.push_back(job->staged);
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
  }
  size_t n = 0;
  for (const auto& p : doomed) {
    if (p.empty()) continue;
    removeQuietly(p);
    ++n;
  }
  return n;
}

}  // namespace snapimport::plugin
