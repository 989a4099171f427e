#include "WriteImporter.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <thread>

#include "ChainId.h"
#include "ImportLabels.h"
#include "Importer.h"
#include "common/ImportProgress.h"
#include "common/Log.h"
#include "common/Metrics.h"
#include "store/Digest.h"

namespace snapimport::plugin {
namespace fs = std::filesystem;
using progress::LayerState;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kSource = "content";
// What `snapimport status` says of a layer containerd applies itself because its Prepare came
// before any of its bytes (containerd's unpacker fetches only after the first layer it must apply).
constexpr const char* kDeclinedWhy =
    "containerd applies it itself: its Prepare came before any of its bytes";

// containerd's metadata store hands the backend "<namespace>/<seq>/<ref>", and its fetcher names
// refs "<kind>-<digest>" (remotes.MakeRefKey): "layer-", "config-", "manifest-", "index-".
std::string_view refKind(std::string_view ref) {
  size_t a = ref.find('/');
  if (a != std::string_view::npos) {
    size_t b = ref.find('/', a + 1);
    if (b != std::string_view::npos && b > a + 1 &&
        ref.substr(a + 1, b - a - 1).find_first_not_of("0123456789") == std::string_view::npos) {
      ref = ref.substr(b + 1);
    }
  }
  size_t dash = ref.find('-');
  return dash == std::string_view::npos ? std::string_view() : ref.substr(0, dash);
}

// The digest at the end of "<kind>-<digest>" or "<kind>-<name>@<digest>".
std::string digestOfRef(std::string_view ref) {
  size_t start = ref.rfind('@');
  if (start == std::string_view::npos)
    start = ref.rfind("sha256:");
  else
    ++start;
  if (start == std::string_view::npos) return {};
  std::string d(ref.substr(start));
  return store::Digest::isValid(d) ? d : std::string();
}

class VerifyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace

struct WriteImporter::Entry {
  std::string digest;
  std::string ref;
  // Syncing: unpacked and verified, its syncfs running; no longer counted against maxConcurrent.
  enum class State {
    Streaming,
    Unpacking,
    Syncing,
    Staged,
    Failed,
    Taken
  } state = State::Streaming;  // mu_

  // The buffer between the Write stream and the unpack, under bmu.
  std::mutex bmu;
  std::condition_variable bcv;
  std::deque<std::string> chunks;
  size_t frontPos = 0;     // bytes of chunks.front() already read
  size_t queued = 0;       // bytes in chunks not yet read
  bool eof = false;        // the ingest was committed; the unpack gets the end after the chunks
  bool abandoned = false;  // the tee let go; the unpack must stop
  bool unpackDone = false;
  int64_t committedSize = -1;
  std::string abandonReason;

  std::atomic<bool> cancel{false};
  std::atomic<uint64_t> written{0};

  // Set by the unpack thread, under mu_.
  fs::path staged;
  unpack::Result result;
  std::string reason, error;
  Clock::time_point startedAt = Clock::now(), finishedAt;
};

namespace {

// The unpack pipeline's view of a Tee's buffer.
class TeeSource : public unpack::Source {
 public:
  explicit TeeSource(WriteImporter::Entry& e) : e_(e) {}

  size_t read(void* buf, size_t len) override {
    std::unique_lock lock(e_.bmu);
    e_.bcv.wait(lock, [&] { return !e_.chunks.empty() || e_.eof || e_.abandoned; });
    if (e_.abandoned)
      throw unpack::Cancelled("the write of blob " + e_.digest +
                              " was abandoned: " + e_.abandonReason);
    if (e_.chunks.empty()) return 0;
    const std::string& front = e_.chunks.front();
    size_t n = std::min(len, front.size() - e_.frontPos);
    std::memcpy(buf, front.data() + e_.frontPos, n);
    e_.frontPos += n;
    e_.queued -= n;
    if (e_.frontPos == front.size()) {
      e_.chunks.pop_front();
      e_.frontPos = 0;
    }
    lock.unlock();
    e_.bcv.notify_all();  // room for the writer
    return n;
  }

  // A Write carries no media type: the first bytes tell gzip, zstd or plain tar, as they do for
  // containerd's own applier (compression.DecompressStream).
  std::string mediaType() {
    unsigned char head[4] = {};
    size_t have = 0;
    std::unique_lock lock(e_.bmu);
    e_.bcv.wait(lock, [&] {
      have = 0;
      size_t skip = e_.frontPos;
      for (const auto& c : e_.chunks) {
        for (size_t i = skip; i < c.size() && have < sizeof head; ++i)
          head[have++] = static_cast<unsigned char>(c[i]);
        skip = 0;
        if (have == sizeof head) break;
      }
      return have == sizeof head || e_.eof || e_.abandoned;
    });
    if (have >= 2 && head[0] == 0x1f && head[1] == 0x8b)
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    if (have == 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd) {
      return "application/vnd.oci.image.layer.v1.tar+zstd";
    }
    return "application/vnd.oci.image.layer.v1.tar";
  }

 private:
  WriteImporter::Entry& e_;
};

}  // namespace

// --- Tee -----------------------------------------------------------------------------------------

WriteImporter::Tee::~Tee() {
  if (entry_) abandon("", "the write stream ended without a commit");
}

bool WriteImporter::Tee::append(int64_t offset, const std::string& data) {
  if (!entry_) return false;
  if (offset != next_) {
    abandon("resumed", "a write at offset " + std::to_string(offset) + " after " +
                           std::to_string(next_) + " bytes");
    return false;
  }
  Entry& e = *entry_;
  const size_t cap = owner_.options_.bufferBytes;
  std::unique_lock lock(e.bmu);
  if (e.abandoned || e.unpackDone) {
    lock.unlock();
    entry_.reset();  // the unpack has already failed and said why
    return false;
  }
  bool room = e.bcv.wait_for(lock, owner_.options_.stallLimit, [&] {
    return e.queued == 0 || e.queued + data.size() <= cap || e.abandoned || e.unpackDone;
  });
  if (!room) {
    lock.unlock();
    abandon("slow", "the unpack fell " + std::to_string(e.queued) +
                        " bytes behind the write for longer than " +
                        std::to_string(owner_.options_.stallLimit.count()) + "ms");
    return false;
  }
  if (e.abandoned || e.unpackDone) {
    lock.unlock();
    entry_.reset();
    return false;
  }
  e.chunks.push_back(data);  // the one copy: the ingest takes the caller's string over
  e.queued += data.size();
  next_ += static_cast<int64_t>(data.size());
  lock.unlock();
  e.bcv.notify_all();
  return true;
}

void WriteImporter::Tee::truncated() {
  if (entry_) abandon("resumed", "the ingest was truncated and written again from offset 0");
}

void WriteImporter::Tee::committed(const std::string& digest, int64_t size) {
  if (!entry_) return;
  auto e = std::move(entry_);
  if (digest != e->digest || size != next_) {
    // Cannot happen with the checks in ContentService; refuse rather than trust it.
    entry_ = std::move(e);
    abandon("other", "the ingest committed " + digest + " of " + std::to_string(size) +
                         " bytes; the tee saw " + std::to_string(next_) + " bytes of " +
                         entry_->digest);
    return;
  }
  {
    std::lock_guard lock(e->bmu);
    e->eof = true;
    e->committedSize = size;
  }
  e->bcv.notify_all();
  {
    std::lock_guard lock(owner_.mu_);
    if (e->state == Entry::State::Streaming) e->state = Entry::State::Unpacking;
  }
  owner_.changed_.notify_all();
}

void WriteImporter::Tee::abandon(const char* reason, const std::string& why) {
  auto e = std::move(entry_);
  if (!e) return;
  {
    std::lock_guard lock(e->bmu);
    if (e->abandoned || e->unpackDone) return;
    e->abandoned = true;
    e->abandonReason = why;
    e->chunks.clear();
    e->queued = 0;
  }
  e->cancel = true;
  e->bcv.notify_all();
  // A write that ends without a commit (a cancelled pull, a failed or corrupt blob) is not a
  // fallback of its own: if containerd retries, the retry is what falls back or imports.
  if (*reason) owner_.fallback(reason, e->digest, why);
}

// --- WriteImporter -------------------------------------------------------------------------------

WriteImporter::WriteImporter(std::shared_ptr<store::SnapshotStore> snapshots,
                             std::shared_ptr<store::ContentStore> content,
                             WriteImportOptions options)
    : snapshots_(std::move(snapshots)),
      content_(std::move(content)),
      options_(options),
      teeDeclined_(options.teeDeclined) {}

WriteImporter::~WriteImporter() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  for (auto& [d, e] : entries_) {
    {
      std::lock_guard b(e->bmu);
      e->abandoned = true;
      e->abandonReason = "the daemon is shutting down";
    }
    e->cancel = true;
    e->bcv.notify_all();
  }
  changed_.notify_all();
  std::map<std::thread::id, std::thread> threads;
  threads.swap(threads_);
  lock.unlock();
  for (auto& [id, t] : threads) t.join();
  cleanupStaged(true);
}

WriteImporter::Stats WriteImporter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

size_t WriteImporter::pending() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void WriteImporter::fallback(const std::string& reason, const std::string& layer,
                             const std::string& why) {
  metrics::Metrics::daemon().fallbacks(reason, kSource).Increment();
  {
    std::lock_guard lock(mu_);
    ++stats_.fallbacks;
  }
  if (!layer.empty())
    progress::ImportProgress::daemon().layerState(layer, LayerState::Fallback, why);
  log::info("layer write not imported; containerd applies it itself",
            {{"reason", reason}, {"layer", layer}, {"error", why}});
}

std::unique_ptr<WriteImporter::Tee> WriteImporter::beginWrite(const std::string& ref,
                                                              const std::string& expectedDigest,
                                                              int64_t ingestOffset, int64_t total) {
  if (options_.maxConcurrent <= 0 || refKind(ref) != "layer") return nullptr;
  // containerd's metadata store opens the backend's ingest without the expected digest (it
  // comes with the commit); its fetcher names the ref after the blob.
  const std::string expected = expectedDigest.empty() ? digestOfRef(ref) : expectedDigest;
  if (!store::Digest::isValid(expected)) return nullptr;
  if (ingestOffset != 0) {
    fallback("resumed", expected,
             "the write resumes ingest \"" + ref + "\" at offset " + std::to_string(ingestOffset) +
                 ": the start of the blob went by unseen");
    return nullptr;
  }
  auto e = std::make_shared<Entry>();
  e->digest = expected;
  e->ref = ref;
  bool appliedByContainerd = false;  // its Prepare was declined: containerd applies it itself
  {
    std::lock_guard lock(mu_);
    if (stopping_) return nullptr;
    auto it = entries_.find(expected);
    if (it != entries_.end() && it->second->state != Entry::State::Failed) {
      return nullptr;  // another namespace's write of the same blob is already being unpacked
    }
    size_t active = 0;
    for (const auto& [d, x] : entries_) {
      if (x->state == Entry::State::Streaming || x->state == Entry::State::Unpacking) ++active;
    }
    if (!teeDeclined_ && !options_.teeWithoutUnpacker) {
      bool unpacker = false;
      const auto now = Clock::now();
      for (auto it = unpacking_.begin(); it != unpacking_.end();) {
        if (now - it->second > options_.stagedGrace) {
          it = unpacking_.erase(it);
          continue;
        }
        if (index_.lists(it->first, expected)) unpacker = true;
        ++it;
      }
      // containerd applies this layer itself, after the whole image is fetched.
      if (!unpacker) return nullptr;
    }
    auto declined = declined_.find(expected);
    if (declined != declined_.end()) {
      bool recent = Clock::now() - declined->second < options_.stagedGrace;
      declined_.erase(declined);
      appliedByContainerd = recent && !teeDeclined_;
    }
    if (appliedByContainerd || active >= static_cast<size_t>(options_.maxConcurrent)) {
      e.reset();  // nothing to start; marked or counted outside the lock below
    } else {
      entries_[expected] = e;
      failedWrites_.erase(expected);
      ++running_;
      ++stats_.tees;
    }
  }
  if (appliedByContainerd) {
    // Its record in declined_ is gone now. Its image may not be shown yet (the declining Prepare
    // came before any tee of the image), and showing it later would list this layer as queued:
    // show it now and mark the layer.
    showImageOf(expected);
    progress::ImportProgress::daemon().layerState(expected, LayerState::Fallback, kDeclinedWhy);
    return nullptr;
  }
  if (!e) {
    fallback("busy", expected,
             std::to_string(options_.maxConcurrent) + " layer writes are already being unpacked");
    return nullptr;
  }
  metrics::Metrics::daemon().importsStartedFrom(kSource).Increment();
  auto& prog = progress::ImportProgress::daemon();
  showImageOf(expected);
  prog.layerState(expected, LayerState::Fetching);
  prog.layerSource(expected, kSource, "");  // a Prepare or an Apply takes it: not known yet
  log::debug("unpacking layer as containerd writes it",
             {{"ref", ref}, {"layer", expected}, {"bytes", std::to_string(total)}});
  std::vector<std::thread> ended;
  {
    std::lock_guard lock(mu_);
    for (auto id : ended_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      ended.push_back(std::move(it->second));
      threads_.erase(it);
    }
    ended_.clear();
    std::thread t([this, e] { run(e); });
    auto id = t.get_id();
    threads_.emplace(id, std::move(t));
  }
  for (auto& t : ended) t.join();  // they have returned from run() or are about to
  return std::unique_ptr<Tee>(new Tee(*this, e));
}

void WriteImporter::run(std::shared_ptr<Entry> e) {
  auto& m = metrics::Metrics::daemon();
  auto& prog = progress::ImportProgress::daemon();
  m.importJobsInFlight.Increment();
  fs::path staged;
  unpack::Result result;
  std::string reason, error;
  try {
    staged = makeStagingDir(snapshots_->stagingDir(), "write-");
    TeeSource src(*e);
    std::string mediaType = src.mediaType();
    unpack::Options opts;
    opts.userxattr = snapshots_->overlayOptions().userxattr;
    opts.limits = options_.limits;
    opts.directWriteMinBytes = options_.directWriteMinBytes;
    opts.cancel = &e->cancel;
    opts.progressBytes = &e->written;
    // The content store hashes every byte it is written and commits only the expected digest;
    // the tee saw exactly those bytes, and the stream's end comes only after that commit.
    opts.hashCompressed = false;
    opts.sync = false;  // below, once this unpack no longer counts against maxConcurrent
    {
      auto writing = StagingWriteback::busyOf(options_.writeback);
      result = unpack::unpackLayer(src, mediaType, staged / "fs", opts);
    }
    int64_t size;
    {
      std::lock_guard lock(e->bmu);
      size = e->committedSize;
    }
    if (size < 0 || result.compressedBytes != static_cast<uint64_t>(size)) {
      throw VerifyError("blob " + e->digest + ": the unpack read " +
                        std::to_string(result.compressedBytes) +
                        " bytes, the content store committed " + std::to_string(size));
    }
    // What is left is waiting for the disk (syncfs writes back everything written so far, for
    // every layer): a layer write that begins meanwhile is teed rather than refused as busy.
    {
      std::lock_guard lock(mu_);
      e->state = Entry::State::Syncing;
    }
    unpack::syncFilesystem(staged / "fs");
  } catch (const VerifyError& x) {
    reason = "verify";
    error = x.what();
  } catch (const unpack::LimitExceeded& x) {
    reason = "limit";
    error = x.what();
  } catch (const unpack::Cancelled& x) {
    reason = "cancelled";
    error = x.what();
  } catch (const unpack::UnpackError& x) {
    reason = "extract";
    error = x.what();
  } catch (const std::exception& x) {
    reason = "internal";
    error = x.what();
  }
  {
    std::lock_guard lock(e->bmu);
    e->unpackDone = true;
    e->chunks.clear();
    e->queued = 0;
  }
  e->bcv.notify_all();  // a Write waiting for room goes on without the tee
  m.importJobsInFlight.Decrement();
  if (reason.empty()) {
    m.writtenBytes.Increment(static_cast<double>(result.uncompressedBytes));
    m.directWrittenBytes.Increment(static_cast<double>(result.directBytes));
    m.layerImportDuration.Observe(
        std::chrono::duration<double>(Clock::now() - e->startedAt).count());
    prog.layerBytes(e->digest, result.compressedBytes, result.uncompressedBytes);
  } else {
    removeQuietly(staged);
    staged.clear();
    m.importsFailed(reason, kSource).Increment();
    prog.layerState(e->digest, LayerState::Failed, error);
    if (reason == "cancelled") {
      log::debug("layer write unpack stopped", {{"layer", e->digest}, {"error", error}});
    } else {
      log::warn("unpacking a layer as containerd wrote it failed; containerd applies it itself",
                {{"layer", e->digest}, {"reason", reason}, {"error", error}});
    }
  }
  std::lock_guard lock(mu_);
  e->finishedAt = Clock::now();
  if (reason.empty()) {
    e->staged = staged;
    e->result = std::move(result);
    e->state = Entry::State::Staged;
    ++stats_.staged;
  } else {
    e->reason = reason;
    e->error = error;
    e->state = Entry::State::Failed;
    ++stats_.failed;
    if (failedWrites_.size() > 4096) failedWrites_.clear();
    failedWrites_.insert(e->digest);
    if (failedAt_.size() > 4096) failedAt_.clear();
    failedAt_[e->digest] = e->finishedAt;
    auto it = entries_.find(e->digest);
    if (it != entries_.end() && it->second == e) entries_.erase(it);
  }
  --running_;
  ended_.push_back(std::this_thread::get_id());
  changed_.notify_all();
}

bool WriteImporter::indexes(const std::string& ref) {
  std::string_view kind = refKind(ref);
  return kind == "manifest" || kind == "config";
}

void WriteImporter::blobWritten(const std::string& ref, const std::string& digest) {
  if (options_.maxConcurrent <= 0 || !indexes(ref)) return;
  std::string_view kind = refKind(ref);
  try {
    store::Digest d = store::Digest::parse(digest);
    store::ContentReader reader = content_->openReader(d);
    size_t cap = kind == "manifest" ? options_.maxManifestBytes : options_.maxConfigBytes;
    if (reader.size() <= 0 || static_cast<uint64_t>(reader.size()) > cap) return;
    std::string bytes(static_cast<size_t>(reader.size()), '\0');
    size_t got = 0;
    while (got < bytes.size()) {
      size_t n = reader.readAt(static_cast<int64_t>(got), bytes.data() + got, bytes.size() - got);
      if (n == 0) return;
      got += n;
    }
    if (kind == "manifest") {
      index_.addManifest(digest, bytes);
    } else {
      index_.addConfig(digest, bytes);
    }
  } catch (const std::exception& x) {
    log::debug("could not index a written blob",
               {{"ref", ref}, {"digest", digest}, {"error", x.what()}});
  }
}

void WriteImporter::labelsUpdated(const std::string& digest, const store::Labels& labels) {
  static constexpr std::string_view kPrefix = "containerd.io/distribution.source.";
  for (const auto& [k, v] : labels) {
    if (k.size() > kPrefix.size() && k.compare(0, kPrefix.size(), kPrefix) == 0 && !v.empty()) {
      // The value may list several repositories; the first names the image well enough.
      index_.addSourceLabel(digest, k.substr(kPrefix.size()), v.substr(0, v.find(',')));
    }
  }
}

std::shared_ptr<WriteImporter::Entry> WriteImporter::findLocked(const LayerQuery& q) const {
  auto diffIdOf = [&](const Entry& e) {
    return e.state == Entry::State::Staged ? e.result.diffId : index_.diffIdOf(e.digest);
  };
  if (!q.blobDigest.empty()) {
    auto it = entries_.find(q.blobDigest);
    if (it == entries_.end()) return nullptr;
    if (!q.diffId.empty() && diffIdOf(*it->second) != q.diffId) return nullptr;
    return it->second;
  }
  if (q.diffId.empty()) return nullptr;
  for (const auto& [d, e] : entries_) {
    if (diffIdOf(*e) == q.diffId) return e;
  }
  return nullptr;
}

bool WriteImporter::has(const LayerQuery& q) const {
  std::lock_guard lock(mu_);
  return findLocked(q) != nullptr;
}

std::optional<WriteImporter::StagedLayer> WriteImporter::take(
    const LayerQuery& q, std::chrono::milliseconds wait, const std::function<bool()>& cancelled) {
  std::unique_lock lock(mu_);
  auto e = findLocked(q);
  if (!e) return std::nullopt;
  return waitAndTake(lock, e, wait, cancelled);
}

std::optional<WriteImporter::StagedLayer> WriteImporter::waitAndTake(
    std::unique_lock<std::mutex>& lock, std::shared_ptr<Entry> e, std::chrono::milliseconds wait,
    const std::function<bool()>& cancelled) {
  const auto deadline = wait.count() > 0 ? Clock::now() + wait : Clock::time_point::max();
  while (!stopping_ && (e->state == Entry::State::Streaming ||
                        e->state == Entry::State::Unpacking || e->state == Entry::State::Syncing)) {
    if (cancelled && cancelled()) return std::nullopt;
    auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    // Sliced, so a cancelled caller is noticed without a notification of its own.
    changed_.wait_for(lock,
                      std::min<Clock::duration>(std::chrono::milliseconds(100), deadline - now));
  }
  if (stopping_ || e->state != Entry::State::Staged || (cancelled && cancelled()))
    return std::nullopt;
  e->state = Entry::State::Taken;
  auto it = entries_.find(e->digest);
  if (it != entries_.end() && it->second == e) entries_.erase(it);
  changed_.notify_all();
  StagedLayer out;
  out.dir = e->staged;
  out.blobDigest = e->digest;
  out.diffId = e->result.diffId;
  out.implicitDirs = e->result.implicitDirs;
  out.compressedBytes = e->result.compressedBytes;
  out.uncompressedBytes = e->result.uncompressedBytes;
  out.entries = e->result.entries;
  return out;
}

bool WriteImporter::imageWriteFailedLocked(const std::string& manifest,
                                           Clock::time_point since) const {
  for (const auto& [digest, at] : failedAt_) {
    if (at >= since && index_.lists(manifest, digest)) return true;
  }
  return false;
}

void WriteImporter::showImageOf(const std::string& layer) {
  auto image = index_.imageOf(layer);
  if (!image) return;
  // All under mu_ (ImportProgress is a leaf lock): a Prepare that declines a layer records it in
  // declined_ and sets its state under mu_ too, so it either comes first and is marked here, or
  // comes after the image is shown and its own state change lands. Collecting declined_ and
  // showing the image in two steps lost the declined layer's state in between ("queued").
  std::lock_guard lock(mu_);
  if (!startedImages_.emplace(image->manifest, image->ref).second) return;
  auto& prog = progress::ImportProgress::daemon();
  prog.imageStarted(image->ref, image->manifest, image->layers);
  // Layers whose Prepare came before this image showed up: containerd applied them itself.
  for (const auto& [digest, size] : image->layers)
    if (declined_.count(digest)) prog.layerState(digest, LayerState::Fallback, kDeclinedWhy);
}

void WriteImporter::finishImage(const std::string& manifest) {
  std::string ref;
  {
    std::lock_guard lock(mu_);
    auto it = startedImages_.find(manifest);
    if (it == startedImages_.end()) return;
    ref = it->second;
    startedImages_.erase(it);
  }
  progress::ImportProgress::daemon().imageFinished(ref, manifest);
}

WriteImporter::Outcome WriteImporter::prepare(const std::string& key, const std::string& parent,
                                              const store::Labels& labels,
                                              const std::function<bool()>& cancelled) {
  if (options_.maxConcurrent <= 0) return Outcome::Fallback;
  auto ref = labels.find(kLabelSnapshotRef);
  if (ref == labels.end()) return Outcome::Fallback;  // AlreadyExists would be an error then
  const std::string chainId = ref->second;
  std::string layer;
  try {
    std::string parentChain;
    if (!parent.empty()) {
      auto plabels = snapshots_->stat(parent).labels;
      auto it = plabels.find(kLabelSnapshotRef);
      if (it == plabels.end()) return Outcome::Fallback;
      parentChain = it->second;
    }
    std::optional<WrittenImageIndex::ExpectedLayer> expected = index_.layerAt(parentChain, chainId);

    std::unique_lock lock(mu_);
    if (expected) {
      if (unpacking_.size() > 4096) unpacking_.clear();
      unpacking_[expected->manifest] = Clock::now();
    }
    std::shared_ptr<Entry> e;
    // A staged tree proves its own diff_id; one still streaming is known by its config's.
    for (const auto& [d, x] : entries_) {
      if (x->state == Entry::State::Staged && chainIdOf(parentChain, x->result.diffId) == chainId)
        e = x;
    }
    if (!e && expected) {
      auto it = entries_.find(expected->blobDigest);
      if (it != entries_.end()) e = it->second;
    }
    // containerd's unpacker fetches a layer together with the ones below it once it applies the
    // first of them itself, so the first bytes of this one may be a moment behind this Prepare.
    // Without the layer below written or being written, containerd is not fetching this image
    // (the bottom layer, or an importer pull): no wait then.
    const auto startWait = ImportLabels::from(labels)
                               ? std::min(options_.startWait, options_.startWaitWithImporter)
                               : options_.startWait;
    if (!e && expected && startWait.count() > 0 && !expected->below.empty() &&
        (entries_.count(expected->below) ||
         content_->contains(store::Digest::parse(expected->below))) &&
        !content_->contains(store::Digest::parse(expected->blobDigest)) &&
        !failedWrites_.count(expected->blobDigest)) {
      log::debug("Prepare waits for the layer's write to begin",
                 {{"key", key}, {"layer", expected->blobDigest}});
      const auto deadline = Clock::now() + startWait;
      const auto waitFrom = Clock::now() - startWait;
      const store::Digest blob = store::Digest::parse(expected->blobDigest);
      while (!stopping_ && Clock::now() < deadline && !(cancelled && cancelled())) {
        auto it = entries_.find(expected->blobDigest);
        if (it != entries_.end()) {
          e = it->second;
          break;
        }
        // Its write went by without a tee (failed, or committed untouched): nothing to wait for.
        if (failedWrites_.count(expected->blobDigest) || content_->contains(blob)) break;
        // Another layer's write of this image failed (a corrupt blob, a registry error): the
        // pull is failing, and containerd 2.x waits for this Prepare before it reports that.
        if (imageWriteFailedLocked(expected->manifest, waitFrom)) break;
        changed_.wait_for(lock, std::chrono::milliseconds(50));
      }
    }
    if (!e && cancelled && cancelled()) return Outcome::Cancelled;
    if (!e) {
      // Nothing of this layer came through a write yet: containerd applies it itself, so its
      // write (which follows now, if the unpacker starts fetching here) need not be unpacked.
      if (expected) {
        if (declined_.size() > 4096) declined_.clear();
        declined_[expected->blobDigest] = Clock::now();
        // A leaf lock; the layer shows only once its image does (showImageOf).
        progress::ImportProgress::daemon().layerState(expected->blobDigest, LayerState::Fallback,
                                                      kDeclinedWhy);
      }
      return Outcome::Fallback;
    }
    layer = e->digest;
    log::debug("Prepare waits for the layer unpacked from its write",
               {{"key", key}, {"layer", layer}});
    auto staged = waitAndTake(lock, e, options_.layerTimeout, cancelled);
    std::string failure = e->error.empty()
                              ? "the staged layer was not ready (cancelled, timed out or taken)"
                              : e->error;
    lock.unlock();
    if (!staged && cancelled && cancelled()) {
      log::info("Prepare's client went away while it waited for the layer from containerd's write",
                {{"key", key}, {"layer", layer}, {"chain_id", chainId}});
      return Outcome::Cancelled;
    }
    if (!staged) {
      fallback("import_failed", layer, failure);
      if (expected && expected->top) finishImage(expected->manifest);
      return Outcome::Fallback;
    }
    std::string configDiffId = index_.diffIdOf(staged->blobDigest);
    std::string mismatch;
    if (chainIdOf(parentChain, staged->diffId) != chainId) {
      mismatch = "layer " + staged->blobDigest + " unpacked to diff_id " + staged->diffId +
                 ", which on parent chain " + (parentChain.empty() ? "(none)" : parentChain) +
                 " does not give chain " + chainId;
    } else if (!configDiffId.empty() && configDiffId != staged->diffId) {
      mismatch = "layer " + staged->blobDigest + " unpacked to diff_id " + staged->diffId +
                 " but the image config says " + configDiffId;
    }
    if (!mismatch.empty()) {
      removeQuietly(staged->dir);
      metrics::Metrics::daemon().importsFailed("verify", kSource).Increment();
      fallback("import_failed", layer, mismatch);
      if (expected && expected->top) finishImage(expected->manifest);
      return Outcome::Fallback;
    }
    progress::ImportProgress::daemon().layerSource(layer, kSource, "prepare");
    progress::ImportProgress::daemon().layerState(layer, LayerState::Committing);
    try {
      commitImportedLayer(*snapshots_, chainId, parent, labels, staged->dir, staged->implicitDirs);
    } catch (...) {
      removeQuietly(staged->dir);
      throw;
    }
    progress::ImportProgress::daemon().layerState(layer, LayerState::Done);
    metrics::Metrics::daemon().importsCompletedFrom(kSource).Increment();
    {
      std::lock_guard l(mu_);
      ++stats_.imported;
    }
    if (expected && expected->top) finishImage(expected->manifest);
    log::info("imported layer from containerd's write",
              {{"key", key},
               {"layer", staged->blobDigest},
               {"chain_id", chainId},
               {"bytes", std::to_string(staged->compressedBytes)},
               {"entries", std::to_string(staged->entries)}});
    return Outcome::Imported;
  } catch (const std::exception& x) {
    fallback("other", layer, x.what());
    return Outcome::Fallback;
  }
}

void WriteImporter::applyStarted(const std::string& digest, bool fromStore) {
  auto& prog = progress::ImportProgress::daemon();
  showImageOf(digest);
  prog.layerSource(digest, kSource, "apply");
  prog.layerState(digest, fromStore ? LayerState::Fetching : LayerState::Committing);
}

void WriteImporter::applyFinished(const std::string& digest, uint64_t compressedBytes,
                                  uint64_t uncompressedBytes, const std::string& error) {
  auto& prog = progress::ImportProgress::daemon();
  if (error.empty()) {
    prog.layerBytes(digest, compressedBytes, uncompressedBytes);
    prog.layerState(digest, LayerState::Done);
  } else {
    prog.layerState(digest, LayerState::Failed, error);
  }
  // containerd applies an image's layers bottom first: its top layer ends the image, and so does
  // a failure, which fails containerd's pull.
  auto image = index_.imageOf(digest);
  if (image && (!error.empty() || (!image->layers.empty() && image->layers.back().first == digest)))
    finishImage(image->manifest);
}

void WriteImporter::blobDeleted(const std::string& digest) {
  fs::path doomed;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(digest);
    if (it == entries_.end() || it->second->state != Entry::State::Staged) return;
    doomed = it->second->staged;
    entries_.erase(it);
    changed_.notify_all();
  }
  log::debug("removed a staged layer whose blob was deleted", {{"layer", digest}});
  removeQuietly(doomed);
}

size_t WriteImporter::cleanupStaged(bool all) {
  std::vector<fs::path> doomed;
  std::vector<std::pair<std::string, std::string>> images;
  {
    std::lock_guard lock(mu_);
    auto now = Clock::now();
    for (auto it = entries_.begin(); it != entries_.end();) {
      const auto& e = it->second;
      if (e->state == Entry::State::Staged &&
          (all || now - e->finishedAt > options_.stagedGrace ||
           !content_->contains(store::Digest::parse(e->digest)))) {
        doomed.push_back(e->staged);
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    // An image whose layers are all gone is not being imported any more.
    if (entries_.empty()) {
      images.assign(startedImages_.begin(), startedImages_.end());
      startedImages_.clear();
    }
  }
  for (const auto& [manifest, ref] : images)
    progress::ImportProgress::daemon().imageFinished(ref, manifest);
  for (const auto& p : doomed) removeQuietly(p);
  return doomed.size();
}

}  // namespace snapimport::plugin
