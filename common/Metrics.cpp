#include "Metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>

namespace snapimport::metrics {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

const std::vector<double> kGrpcBuckets = {0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};

template <size_t N>
std::string_view known(std::string_view reason, const std::array<std::string_view, N>& reasons) {
  if (std::find(reasons.begin(), reasons.end(), reason) != reasons.end()) return reason;
  return reasons.back();
}

// The first source (registry) for anything unknown, so a typo never makes a new series.
std::string_view knownSource(std::string_view source) {
  if (std::find(kImportSources.begin(), kImportSources.end(), source) != kImportSources.end()) {
    return source;
  }
  return kImportSources.front();
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      startedFamily_(BuildCounter()
                         .Name("snapimport_imports_started_total")
                         .Help("Layer imports started (one per layer job, after deduplication), "
                               "by source (registry fetch or containerd's content writes).")
                         .Register(*registry_)),
      completedFamily_(BuildCounter()
                           .Name("snapimport_imports_completed_total")
                           .Help("Layer imports that verified and committed their snapshot, by "
                                 "source.")
                           .Register(*registry_)),
      importsStarted(startedFamily_.Add({{"source", "registry"}})),
      importsCompleted(completedFamily_.Add({{"source", "registry"}})),
      fetchedBytes(BuildCounter()
                       .Name("snapimport_fetched_bytes_total")
                       .Help("Compressed layer bytes received from registries by the importer.")
                       .Register(*registry_)
                       .Add({})),
      writtenBytes(BuildCounter()
                       .Name("snapimport_written_bytes_total")
                       .Help("File bytes the importer wrote into snapshot directories.")
                       .Register(*registry_)
                       .Add({})),
      directWrittenBytes(BuildCounter()
                             .Name("snapimport_direct_written_bytes_total")
                             .Help("Of the file bytes written into snapshot directories, those "
                                   "written with O_DIRECT, past the page cache "
                                   "(import.direct_write_min_size).")
                             .Register(*registry_)
                             .Add({})),
      layerImportDuration(
          BuildHistogram()
              .Name("snapimport_layer_import_duration_seconds")
              .Help("Time from the start of a layer import until its snapshot is committed.")
              .Register(*registry_)
              .Add({}, kLayerDurationBuckets)),
      stagingWritebackDuration(
          BuildHistogram()
              .Name("snapimport_staging_writeback_seconds")
              .Help("One background sync of the staging filesystem while layers unpack "
                    "(import.writeback_interval).")
              .Register(*registry_)
              .Add({}, kWritebackBuckets)),
      importJobsInFlight(BuildGauge()
                             .Name("snapimport_import_jobs_in_flight")
                             .Help("Layer imports running or queued now.")
                             .Register(*registry_)
                             .Add({})),
      snapshotUsageBytes(
          BuildGauge()
              .Name("snapimport_snapshot_usage_bytes")
              .Help("Disk used by committed snapshots (st_blocks * 512), as recorded at commit.")
              .Register(*registry_)
              .Add({})),
      snapshotUsageInodes(BuildGauge()
                              .Name("snapimport_snapshot_usage_inodes")
                              .Help("Inodes used by committed snapshots, as recorded at commit.")
                              .Register(*registry_)
                              .Add({})),
      criPullCredentials(BuildGauge()
                             .Name("snapimport_cri_pull_credentials")
                             .Help("Credentials of CRI pulls held in memory now (pulls running or "
                                   "in their grace period).")
                             .Register(*registry_)
                             .Add({})),
      failedFamily_(
          BuildCounter()
              .Name("snapimport_imports_failed_total")
              .Help(
                  "Layer imports that failed, by reason; the layer then falls back to containerd.")
              .Register(*registry_)),
      fallbackFamily_(BuildCounter()
                          .Name("snapimport_fallbacks_total")
                          .Help("Layers left to containerd's own fetch and apply, by reason.")
                          .Register(*registry_)),
      noSpaceFamily_(BuildCounter()
                         .Name("snapimport_no_space_errors_total")
                         .Help("Operations that failed with \"no space left on device\", by area.")
                         .Register(*registry_)),
      appliesFamily_(BuildCounter()
                         .Name("snapimport_diff_applies_total")
                         .Help("Layers the diff service applied into containerd's snapshots, by "
                               "where it took them from (write: unpacked as containerd wrote "
                               "the blob; store: unpacked from the content store at the Apply).")
                         .Register(*registry_)),
      snapshotsFamily_(BuildGauge()
                           .Name("snapimport_snapshots")
                           .Help("Snapshots in the store, by kind.")
                           .Register(*registry_)),
      grpcRequests_(BuildCounter()
                        .Name("snapimport_grpc_requests_total")
                        .Help("gRPC requests served, by full method name and status code.")
                        .Register(*registry_)),
      grpcDuration_(BuildHistogram()
                        .Name("snapimport_grpc_request_duration_seconds")
                        .Help("gRPC request handling time, by full method name.")
                        .Register(*registry_)) {
  // Every reason's series exists from the start, at 0.
  for (std::string_view s : kImportSources) {
    importsStartedFrom(s);
    importsCompletedFrom(s);
    for (std::string_view r : kFailureReasons) importsFailed(r, s);
    for (std::string_view r : kFallbackReasons) fallbacks(r, s);
  }
  for (std::string_view a : kNoSpaceAreas) noSpaceFamily_.Add({{"area", std::string(a)}});
  for (std::string_view f : kApplySources) appliesFamily_.Add({{"from", std::string(f)}});
  for (const char* kind : {"committed", "active", "view"}) snapshotsFamily_.Add({{"kind", kind}});
}

Metrics& Metrics::daemon() {
  static Metrics* instance = new Metrics();  // never destroyed: threads may record during exit
  return *instance;
}

prometheus::Counter& Metrics::importsFailed(std::string_view reason, std::string_view source) {
  return failedFamily_.Add({{"reason", std::string(known(reason, kFailureReasons))},
                            {"source", std::string(knownSource(source))}});
}

prometheus::Counter& Metrics::fallbacks(std::string_view reason, std::string_view source) {
  return fallbackFamily_.Add({{"reason", std::string(known(reason, kFallbackReasons))},
                              {"source", std::string(knownSource(source))}});
}

prometheus::Counter& Metrics::importsStartedFrom(std::string_view source) {
  return startedFamily_.Add({{"source", std::string(knownSource(source))}});
}

prometheus::Counter& Metrics::importsCompletedFrom(std::string_view source) {
  return completedFamily_.Add({{"source", std::string(knownSource(source))}});
}

prometheus::Counter& Metrics::noSpaceErrors(std::string_view area) {
  return noSpaceFamily_.Add({{"area", std::string(known(area, kNoSpaceAreas))}});
}

prometheus::Counter& Metrics::diffApplies(std::string_view from) {
  return appliesFamily_.Add({{"from", std::string(known(from, kApplySources))}});
}

prometheus::Gauge& Metrics::snapshots(std::string_view kind) {
  return snapshotsFamily_.Add({{"kind", std::string(kind)}});
}

void Metrics::recordGrpc(const std::string& method, const std::string& code, double seconds) {
  grpcRequests_.Add({{"method", method}, {"code", code}}).Increment();
  grpcDuration_.Add({{"method", method}}, kGrpcBuckets).Observe(seconds);
}

int Metrics::onScrape(std::function<void(Metrics&)> hook) {
  std::lock_guard lock(hooksMu_);
  hooks_.emplace_back(nextHookId_, std::move(hook));
  return nextHookId_++;
}

void Metrics::removeScrapeHook(int id) {
  std::lock_guard lock(hooksMu_);
  std::erase_if(hooks_, [id](const auto& h) { return h.first == id; });
}

std::string Metrics::expose() {
  {
    // Hooks run under the lock so removeScrapeHook cannot return while one is still running.
    std::lock_guard lock(hooksMu_);
    for (auto& [id, hook] : hooks_) hook(*this);
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace snapimport::metrics
