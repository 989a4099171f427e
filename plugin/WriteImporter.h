#pragma once
// Layers staged from containerd's own writes. snapimport is containerd's content store, so every
// layer blob of every pull that does not go through the importer (ctr, nerdctl, BuildKit, a CRI
// pull without snapshot annotations or without credentials for snapimport) streams in through
// ContentService::Write. A Tee copies those bytes, as they arrive, into the importer's unpack
// pipeline, which builds the layer's tree in staging/. When containerd's unpacker then Prepares
// the chain that layer makes on its parent (containerd.io/snapshot.ref = chainID(parent, diff_id)),
// prepare() waits for the staged tree, verifies it and commits it exactly as the importer does
// (commitImportedLayer), and Prepare answers AlreadyExists: containerd skips its read-back and
// apply. Whenever anything is missing or wrong, Prepare goes on as if snapimport had never looked.
//
// The staged-layer registry is also open to other services (the diff service): has() and take()
// find a staged or still-streaming tree by blob digest or diff_id and hand it over.
//
// Write path cost. The tee copies each chunk (the content store takes its own copy over) into a
// bounded per-blob buffer; a Write never re-reads the file and never waits for the unpack except
// when that buffer is full. Then it waits (backpressure) at most stallLimit for room, and if the
// unpack is still behind, the tee detaches: the unpack is cancelled, its staging removed, the
// write goes on at full speed and the layer takes containerd's path (fallbacks{reason="slow"}).
// The unpack is faster than a network in practice, so backpressure smooths out bursts, and a
// stuck disk costs a Write at most stallLimit once.
//
// Trust. The tee begins only on a fresh ingest (offset 0) and gives up on any truncate or
// resumed write, so it has seen exactly the bytes the content store verified on commit: a staged
// tree exists only for a blob whose digest and size the store checked. The tree's own diff_id
// (computed by the pipeline) must give the chain ID containerd asked for, and must equal the
// config's diff_id where the config was seen.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "StagingWriteback.h"
#include "WrittenImageIndex.h"
#include "store/ContentStore.h"
#include "store/SnapshotStore.h"
#include "unpack/Unpacker.h"

namespace snapimport::plugin {

struct WriteImportOptions {
  // Unpacks of containerd's layer writes running at once; 0 turns import from writes off.
  int maxConcurrent = 4;
  // Bytes one blob's tee may hold between containerd's Write and the unpack.
  size_t bufferBytes = 16u << 20;
  // How long a Write may wait for room in a full buffer before the tee detaches.
  std::chrono::milliseconds stallLimit{2000};
  // A Prepare for a layer the index expects, whose lower layer containerd has written but whose
  // own write has not begun, waits this long for it. containerd's unpacker waits for that fetch
  // anyway before it applies the layer, and its copy fills a 1 MiB buffer before the first Write,
  // so on a slow registry the first bytes come seconds after the Prepare. A Prepare that carries
  // CRI layer labels waits at most startWaitWithImporter: the registry importer can serve it.
  std::chrono::milliseconds startWait{60000};
  std::chrono::milliseconds startWaitWithImporter{2000};
  // A Prepare waits at most this long for a staged layer to finish (0: as long as it streams).
  std::chrono::milliseconds layerTimeout{0};
  // Staged layers nobody claimed (the pull was cancelled, or a Prepare without snapshot.ref
  // applied the layer another way) are removed by Cleanup after this long.
  std::chrono::seconds stagedGrace{600};
  // A layer whose Prepare came before any of its bytes (containerd's unpacker applies the first
  // layer it needs itself, and only then fetches) is not unpacked when its write follows: nobody
  // would claim the tree. true keeps teeing it, for a diff service that takes such trees.
  bool teeDeclined = false;
  // Synced in the background while a layer unpacks (null: each layer's own syncfs only).
  std::shared_ptr<StagingWriteback> writeback;
  // A layer write is teed only once containerd's unpacker is at work on an image that lists the
  // layer: a Prepare carrying containerd.io/snapshot.ref for one of its chains came in. That
  // unpacker (CRI pulls, 2.x's transfer service) Prepares before it fetches. A pull that fetches
  // everything first and then unpacks without snapshot.ref (`ctr images pull` on 1.6 and 1.7,
  // image.Unpack) would only leave trees nobody takes, at the cost of CPU and disk the pull needs
  // itself. The diff service takes those trees, so once it is in use (teeDeclined, or
  // keepDeclinedLayers) every layer write is teed. true tees every layer write regardless.
  bool teeWithoutUnpacker = false;
  unpack::Limits limits;
  // Files at least this large are written past the page cache (unpack::Options; 0: none).
  uint64_t directWriteMinBytes = unpack::Options{}.directWriteMinBytes;
  size_t maxManifestBytes = 4u << 20;
  size_t maxConfigBytes = 8u << 20;
};

class WriteImporter {
 public:
  WriteImporter(std::shared_ptr<store::SnapshotStore> snapshots,
                std::shared_ptr<store::ContentStore> content, WriteImportOptions options);
  // Cancels every unpack, waits for them, removes all staging of its own.
  ~WriteImporter();
  WriteImporter(const WriteImporter&) = delete;
  WriteImporter& operator=(const WriteImporter&) = delete;

  struct Entry;

  // One Write stream's copy of a layer blob into the unpack pipeline. Used by the stream's thread
  // only. Destroyed before committed(): the unpack is abandoned (the client left, the write
  // failed or will be resumed later).
  class Tee {
   public:
    ~Tee();
    Tee(const Tee&) = delete;
    Tee& operator=(const Tee&) = delete;
    // `data` is about to be appended to the ingest at `offset` (the ingest's size before it).
    // Returns false once the tee has let go (detached, failed, not contiguous); the caller may
    // then drop it. Blocks at most stallLimit.
    bool append(int64_t offset, const std::string& data);
    // The ingest was truncated: what the tee saw is no longer the blob.
    void truncated();
    // The content store committed the ingest as `digest` of `size` bytes.
    void committed(const std::string& digest, int64_t size);

   private:
    friend class WriteImporter;
    Tee(WriteImporter& owner, std::shared_ptr<Entry> entry)
        : owner_(owner), entry_(std::move(entry)) {}
    void abandon(const char* reason, const std::string& why);
    WriteImporter& owner_;
    std::shared_ptr<Entry> entry_;
    int64_t next_ = 0;
  };

  // --- the content Write path (ContentService) ---
  // Write stream `ref` is about to append its first bytes at `ingestOffset` to an ingest whose
  // expected digest is `expectedDigest` (empty: the digest in the ref, "<ns>/<n>/layer-<digest>";
  // containerd's metadata store sends the expected digest only with the commit, which must then
  // give that digest). A tee for "layer-" refs on a fresh ingest when there is room;
  // null otherwise (the reason is counted).
  std::unique_ptr<Tee> beginWrite(const std::string& ref, const std::string& expectedDigest,
                                  int64_t ingestOffset, int64_t total);
  // True for the ingest refs blobWritten indexes (manifests and configs).
  static bool indexes(const std::string& ref);
  // Blob `digest` was committed (or was already there) under ingest ref `ref`: manifests and
  // configs are read back (they are small) and indexed.
  void blobWritten(const std::string& ref, const std::string& digest);
  // Content labels were set on `digest` (containerd names a manifest's source this way).
  void labelsUpdated(const std::string& digest, const store::Labels& labels);

  // --- the snapshot Prepare path (SnapshotService) ---
  enum class Outcome { Imported, Fallback, Cancelled };
  // For a Prepare carrying containerd.io/snapshot.ref: Imported when a staged layer (waited for
  // if still streaming) is now committed as that chain on `parent`, and Prepare must answer
  // AlreadyExists. `cancelled` is polled while waiting: once the Prepare's client has gone,
  // Cancelled, and nothing is committed (a staged tree stays staged for the pull's retry), since
  // containerd has rolled back its record of this Prepare and would never learn of a snapshot
  // made for it. Never throws.
  Outcome prepare(const std::string& key, const std::string& parent, const store::Labels& labels,
                  const std::function<bool()>& cancelled = {});

  // --- the staged-layer registry, for other services (the diff service) ---
  // A layer identified by its compressed blob digest, or by its diff_id, or both (both must
  // match then). The diff_id of a layer still streaming is the one its image config gives.
  struct LayerQuery {
    std::string blobDigest;
    std::string diffId;
  };
  // A finished, verified layer tree handed over: `dir` holds fs/ (an overlay upper directory) on
  // the snapshots' filesystem, so it can be renamed into place. The taker owns `dir` from now on:
  // it must commit it (e.g. SnapshotStore::commitStaged after unpack::fixImplicitDirs with
  // `implicitDirs`) or remove it.
  struct StagedLayer {
    std::filesystem::path dir;
    std::string blobDigest;
    std::string diffId;
    std::vector<std::string> implicitDirs;
    uint64_t compressedBytes = 0, uncompressedBytes = 0, entries = 0;
  };
  // True while a layer matching `q` is streaming in, unpacking, or staged and unclaimed.
  bool has(const LayerQuery& q) const;
  // Waits (at most `wait`, and while `cancelled` says no) for the layer matching `q` to finish
  // and takes it; nullopt when there is none, it failed, another taker got it first, or the wait
  // ran out (the unpack then goes on and the layer stays available). A caller that has gone
  // takes nothing, not even a finished layer.
  std::optional<StagedLayer> take(const LayerQuery& q, std::chrono::milliseconds wait,
                                  const std::function<bool()>& cancelled = {});

  // For `snapimport status`: the diff service is applying blob `digest` (the layer shows under
  // the indexed image that lists it, source "content", via "apply"; `fromStore`: it is unpacked
  // from the content store now, rather than taken from a tree staged from the write), and then
  // it ended, with `error` empty when the layer is in the snapshot. Declined Applies are not
  // shown: containerd's own differ does those.
  void applyStarted(const std::string& digest, bool fromStore);
  void applyFinished(const std::string& digest, uint64_t compressedBytes,
                     uint64_t uncompressedBytes, const std::string& error);

  // Blob `digest` left the content store (containerd's GC after a failed or cancelled pull): a
  // tree staged from it will not be claimed, so it goes now rather than after the grace period.
  void blobDeleted(const std::string& digest);
  // Removes staged layers nobody claimed within the grace period (all of them with `all`), and
  // those whose blob is no longer in the content store.
  size_t cleanupStaged(bool all = false);

  struct Stats {
    uint64_t tees = 0, staged = 0, imported = 0, deduplicated = 0, failed = 0, fallbacks = 0;
  };
  Stats stats() const;
  // Layers streaming in, unpacking or staged right now.
  size_t pending() const;
  const WriteImportOptions& options() const { return options_; }
  // From now on layers containerd applies itself are teed too (WriteImportOptions::teeDeclined):
  // the diff service calls this when containerd first sends it an Apply, so such a layer's tree
  // is ready by the time its Apply comes, and nothing is unpacked for nobody while containerd is
  // not configured to use the diff service.
  void keepDeclinedLayers() { teeDeclined_ = true; }

 private:
  void run(std::shared_ptr<Entry> entry);
  std::shared_ptr<Entry> findLocked(const LayerQuery& q) const;
  std::optional<StagedLayer> waitAndTake(std::unique_lock<std::mutex>& lock,
                                         std::shared_ptr<Entry> e, std::chrono::milliseconds wait,
                                         const std::function<bool()>& cancelled);
  void fallback(const std::string& reason, const std::string& layer, const std::string& why);
  // Shows the indexed image listing `layer` in `snapimport status`, once.
  void showImageOf(const std::string& layer);
  void finishImage(const std::string& manifest);
  // True when the write of a layer of `manifest` failed since `since` (mu_ held): containerd's
  // fetch of that image is failing, so the writes of its other layers may never begin.
  bool imageWriteFailedLocked(const std::string& manifest,
                              std::chrono::steady_clock::time_point since) const;

  std::shared_ptr<store::SnapshotStore> snapshots_;
  std::shared_ptr<store::ContentStore> content_;
  WriteImportOptions options_;
  WrittenImageIndex index_;
  std::atomic<bool> teeDeclined_;

  mutable std::mutex mu_;
  std::condition_variable changed_;  // an entry changed state, or a worker ended
  bool stopping_ = false;
  int running_ = 0;  // unpack threads alive
  // Unpack threads, joined when they have ended (next beginWrite) or at destruction.
  std::map<std::thread::id, std::thread> threads_;
  std::vector<std::thread::id> ended_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by blob digest, until taken
  std::set<std::string> failedWrites_;  // blobs whose last teed write or unpack failed
  std::map<std::string, std::string> startedImages_;  // manifest -> ref, shown in status
  std::map<std::string, std::chrono::steady_clock::time_point>
      declined_;  // blob -> when its Prepare fell back
  std::map<std::string, std::chrono::steady_clock::time_point>
      failedAt_;  // blob -> when its teed write or unpack last failed
  std::map<std::string, std::chrono::steady_clock::time_point>
      unpacking_;  // manifest -> when a Prepare with snapshot.ref last came for one of its chains
  Stats stats_;
};

}  // namespace snapimport::plugin
