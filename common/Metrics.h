#pragma once
// The daemon's Prometheus metrics. The families are prometheus-cpp's (Debian 12:
// prometheus-cpp-dev, core part only); this class fixes their names, help texts, label sets and
// buckets in one place, so every module records into the same documented series and the importer
// does not need to know about prometheus-cpp's builders.
//
// Metric names (all prefixed snapimport_; see docs/operations.md):
//   imports_started_total{source}, imports_completed_total{source}       counters
//   imports_failed_total{reason,source}, fallbacks_total{reason,source}  counters, fixed sets below
//   no_space_errors_total{area}                                          counter, areas fixed below
//   fetched_bytes_total, written_bytes_total                 counters
//   layer_import_duration_seconds                            histogram
//   import_jobs_in_flight                                    gauge
//   snapshots{kind}, snapshot_usage_bytes, snapshot_usage_inodes   gauges, refreshed at scrape
//   cri_pull_credentials                                     gauge, refreshed at scrape
//   grpc_requests_total{method,code}                         counter
//   grpc_request_duration_seconds{method}                    histogram
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace snapimport::metrics {

// Why an import failed. Reasons are a closed set so the label's cardinality stays bounded and
// every series exists (at 0) from start-up, which keeps rate() and alerts simple.
inline constexpr std::array<std::string_view, 9> kFailureReasons = {
    "fetch",      // network or HTTP error talking to the registry
    "auth",       // registry refused our credentials, or we hold none it accepts
    "verify",     // size, digest or diff_id mismatch
    "extract",    // bad tar, unsupported entry, or a write error while unpacking
    "limit",      // a [limits] cap was exceeded
    "timeout",    // [timeouts] stall or layer deadline
    "cancelled",  // the pull went away
    "no_space",   // the root's filesystem is full (ENOSPC/EDQUOT); the pull fails, no fallback
    "internal",   // anything else (a bug)
};

// Why a layer went containerd's ordinary way (fetch + apply through the content store).
inline constexpr std::array<std::string_view, 10> kFallbackReasons = {
    "disabled",        // import.enabled = false
    "no_labels",       // Prepare without CRI snapshot annotations (ctr pull, annotations off)
    "media_type",      // a layer media type the importer does not handle
    "no_credentials",  // the registry needs credentials snapimport does not hold
    "import_failed",   // the import failed (see imports_failed_total for why)
    // source="content" only (layers staged from containerd's own writes, WriteImporter):
    "busy",     // import.max_concurrent_write_imports unpacks were already running
    "resumed",  // the write resumed or restarted an ingest, so the tee never saw the whole blob
    "slow",     // the unpack fell behind the write past its buffer and was detached
    // the diff service (DiffService) left an Apply to containerd's next differ: the mounts are
    // not snapimport's, the blob is not in its store, or the layer needs stream processors
    "apply_declined",
    "other",
};

// Where an operation failed because the root's filesystem is full (store/NoSpace.h). The last
// entry catches unknown areas.
inline constexpr std::array<std::string_view, 5> kNoSpaceAreas = {
    "import",     // unpacking a layer into staging/
    "content",    // content blobs and ingests (a content Write or Commit)
    "snapshots",  // snapshot directories (Prepare, View, an import's commit)
    "database",   // a meta.db (SQLite) transaction
    "other",
};
// Where an imported layer's bytes came from: the importer's own registry fetch, or containerd's
// writes into snapimport's content store (WriteImporter). Every import series carries it.
inline constexpr std::array<std::string_view, 2> kImportSources = {"registry", "content"};

// Where the diff service's Apply took a layer from: the tree WriteImporter unpacked while
// containerd wrote the blob, or an unpack of the blob from the content store at the Apply.
inline constexpr std::array<std::string_view, 2> kApplySources = {"write", "store"};

// The buckets of snapimport_layer_import_duration_seconds: layers take from milliseconds (tiny
// config layers) to minutes (multi-GB layers on slow links).
inline const std::vector<double> kLayerDurationBuckets = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
                                                          10,   30,  60,   120, 300, 600};
// The buckets of snapimport_staging_writeback_seconds: milliseconds when little is dirty, seconds
// when the disk cannot keep up with the unpacks.
inline const std::vector<double> kWritebackBuckets = {0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 10};

class Metrics {
  // Declared first: the public family references below are initialised from it.
  std::shared_ptr<prometheus::Registry> registry_;
  // Declared before the public counters, which are their source="registry" series.
  prometheus::Family<prometheus::Counter>& startedFamily_;
  prometheus::Family<prometheus::Counter>& completedFamily_;

 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The daemon's instance. Modules record into it directly, as with any Prometheus client's
  // default registry; tests build their own.
  static Metrics& daemon();

  // Importer. importsStarted and importsCompleted are the source="registry" series.
  prometheus::Counter& importsStarted;
  prometheus::Counter& importsCompleted;
  prometheus::Counter& fetchedBytes;
  prometheus::Counter& writtenBytes;
  // Of those, the bytes written with O_DIRECT (import.direct_write_min_size).
  prometheus::Counter& directWrittenBytes;
  prometheus::Histogram& layerImportDuration;
  // One background sync of the staging filesystem (plugin/StagingWriteback).
  prometheus::Histogram& stagingWritebackDuration;
  prometheus::Gauge& importJobsInFlight;
  // Operations that failed with "no space left on device", by area (kNoSpaceAreas).
  prometheus::Counter& noSpaceErrors(std::string_view area);
  // Unknown reasons are counted as "internal" / "other" rather than creating new series; unknown
  // sources as "registry".
  prometheus::Counter& importsFailed(std::string_view reason, std::string_view source = "registry");
  prometheus::Counter& fallbacks(std::string_view reason, std::string_view source = "registry");
  prometheus::Counter& importsStartedFrom(std::string_view source);
  prometheus::Counter& importsCompletedFrom(std::string_view source);
  // Layers the diff service applied (they are also source="content" imports), by kApplySources.
  prometheus::Counter& diffApplies(std::string_view from);

  // Snapshot store state, set from the store at each scrape (see onScrape).
  prometheus::Gauge& snapshots(std::string_view kind);  // "committed", "active", "view"
  prometheus::Gauge& snapshotUsageBytes;
  prometheus::Gauge& snapshotUsageInodes;
  // Credentials of CRI pulls held now (running pulls and their grace), set at each scrape.
  prometheus::Gauge& criPullCredentials;

  // gRPC, one series per method (and status code).
  void recordGrpc(const std::string& method, const std::string& code, double seconds);

  // Runs before each exposition, to refresh gauges that mirror state owned elsewhere. Returns
  // an id for removeScrapeHook (the owner of that state must remove the hook before it dies).
  int onScrape(std::function<void(Metrics&)> hook);
  void removeScrapeHook(int id);

  // Runs the scrape hooks, then renders every family in the Prometheus text format 0.0.4.
  std::string expose();

  prometheus::Registry& registry() { return *registry_; }

 private:
  prometheus::Family<prometheus::Counter>& failedFamily_;
  prometheus::Family<prometheus::Counter>& fallbackFamily_;
  prometheus::Family<prometheus::Counter>& noSpaceFamily_;
  prometheus::Family<prometheus::Counter>& appliesFamily_;
  prometheus::Family<prometheus::Gauge>& snapshotsFamily_;
  prometheus::Family<prometheus::Counter>& grpcRequests_;
  prometheus::Family<prometheus::Histogram>& grpcDuration_;
  std::mutex hooksMu_;
  int nextHookId_ = 1;
  std::vector<std::pair<int, std::function<void(Metrics&)>>> hooks_;
};

}  // namespace snapimport::metrics
