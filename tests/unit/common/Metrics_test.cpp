#include "common/Metrics.h"

#include <gtest/gtest.h>

namespace snapimport::metrics {
namespace {

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(Metrics, EveryFamilyIsExposedFromTheStart) {
  Metrics m;
  std::string t = m.expose();
  for (const char* line : {
           "# TYPE snapimport_imports_started_total counter",
           "snapimport_imports_started_total{source=\"registry\"} 0",
           "snapimport_imports_started_total{source=\"content\"} 0",
           "snapimport_imports_completed_total{source=\"registry\"} 0",
           "snapimport_imports_completed_total{source=\"content\"} 0",
           "snapimport_imports_failed_total{reason=\"fetch\",source=\"registry\"} 0",
           "snapimport_imports_failed_total{reason=\"internal\",source=\"content\"} 0",
           "snapimport_fallbacks_total{reason=\"no_labels\",source=\"registry\"} 0",
           "snapimport_fallbacks_total{reason=\"slow\",source=\"content\"} 0",
           "snapimport_fetched_bytes_total 0",
           "snapimport_written_bytes_total 0",
           "snapimport_direct_written_bytes_total 0",
           "# TYPE snapimport_layer_import_duration_seconds histogram",
           "snapimport_layer_import_duration_seconds_bucket{le=\"0.05\"} 0",
           "snapimport_layer_import_duration_seconds_bucket{le=\"+Inf\"} 0",
           "snapimport_layer_import_duration_seconds_count 0",
           "# TYPE snapimport_staging_writeback_seconds histogram",
           "snapimport_staging_writeback_seconds_bucket{le=\"0.005\"} 0",
           "snapimport_staging_writeback_seconds_count 0",
           "snapimport_import_jobs_in_flight 0",
           "snapimport_snapshots{kind=\"committed\"} 0",
           "snapimport_snapshot_usage_bytes 0",
       }) {
    EXPECT_TRUE(has(t, line)) << "missing: " << line << "\n" << t;
  }
}

TEST(Metrics, RecordsCountersHistogramsAndGauges) {
  Metrics m;
  m.importsStarted.Increment();
  m.importsStarted.Increment();
  m.importsFailed("verify").Increment();
  m.fallbacks("no_credentials").Increment(3);
  m.fetchedBytes.Increment(1024);
  m.layerImportDuration.Observe(0.3);
  m.layerImportDuration.Observe(42);
  m.importJobsInFlight.Set(4);
  std::string t = m.expose();
  EXPECT_TRUE(has(t, "snapimport_imports_started_total{source=\"registry\"} 2")) << t;
  EXPECT_TRUE(has(t, "snapimport_imports_failed_total{reason=\"verify\",source=\"registry\"} 1"))
      << t;
  EXPECT_TRUE(has(t, "snapimport_fallbacks_total{reason=\"no_credentials\",source=\"registry\"} 3"))
      << t;
  EXPECT_TRUE(has(t, "snapimport_fetched_bytes_total 1024")) << t;
  EXPECT_TRUE(has(t, "snapimport_layer_import_duration_seconds_bucket{le=\"0.25\"} 0")) << t;
  EXPECT_TRUE(has(t, "snapimport_layer_import_duration_seconds_bucket{le=\"0.5\"} 1")) << t;
  EXPECT_TRUE(has(t, "snapimport_layer_import_duration_seconds_bucket{le=\"60\"} 2")) << t;
  EXPECT_TRUE(has(t, "snapimport_layer_import_duration_seconds_count 2")) << t;
  EXPECT_TRUE(has(t, "snapimport_layer_import_duration_seconds_sum 42.3")) << t;
  EXPECT_TRUE(has(t, "snapimport_import_jobs_in_flight 4")) << t;
}

TEST(Metrics, UnknownReasonsDoNotCreateSeries) {
  Metrics m;
  m.importsFailed("some new thing").Increment();
  m.fallbacks("whatever").Increment();
  std::string t = m.expose();
  EXPECT_FALSE(has(t, "some new thing")) << t;
  EXPECT_TRUE(has(t, "snapimport_imports_failed_total{reason=\"internal\",source=\"registry\"} 1"))
      << t;
  EXPECT_TRUE(has(t, "snapimport_fallbacks_total{reason=\"other\",source=\"registry\"} 1")) << t;
}

TEST(Metrics, ContentSourceHasItsOwnSeries) {
  Metrics m;
  m.importsStartedFrom("content").Increment();
  m.importsCompletedFrom("content").Increment();
  m.importsFailed("verify", "content").Increment();
  m.fallbacks("resumed", "content").Increment(2);
  m.importsStartedFrom("elsewhere").Increment();  // unknown sources count as registry
  std::string t = m.expose();
  EXPECT_TRUE(has(t, "snapimport_imports_started_total{source=\"content\"} 1")) << t;
  EXPECT_TRUE(has(t, "snapimport_imports_started_total{source=\"registry\"} 1")) << t;
  EXPECT_TRUE(has(t, "snapimport_imports_completed_total{source=\"content\"} 1")) << t;
  EXPECT_TRUE(has(t, "snapimport_imports_failed_total{reason=\"verify\",source=\"content\"} 1"))
      << t;
  EXPECT_TRUE(has(t, "snapimport_fallbacks_total{reason=\"resumed\",source=\"content\"} 2")) << t;
  EXPECT_FALSE(has(t, "elsewhere")) << t;
}

TEST(Metrics, NoSpaceErrorsByAreaExistFromTheStart) {
  Metrics m;
  std::string t = m.expose();
  for (const char* area : {"import", "content", "snapshots", "database", "other"}) {
    EXPECT_TRUE(has(t, std::string("snapimport_no_space_errors_total{area=\"") + area + "\"} 0"))
        << area << "\n"
        << t;
  }
  EXPECT_TRUE(has(t, "snapimport_imports_failed_total{reason=\"no_space\",source=\"registry\"} 0"))
      << t;
  m.noSpaceErrors("content").Increment();
  m.noSpaceErrors("somewhere new").Increment();
  t = m.expose();
  EXPECT_TRUE(has(t, "snapimport_no_space_errors_total{area=\"content\"} 1")) << t;
  EXPECT_TRUE(has(t, "snapimport_no_space_errors_total{area=\"other\"} 1")) << t;
  EXPECT_FALSE(has(t, "somewhere new")) << t;
}

TEST(Metrics, GrpcSeriesByMethodAndCode) {
  Metrics m;
  m.recordGrpc("/containerd.services.snapshots.v1.Snapshots/Stat", "NOT_FOUND", 0.002);
  m.recordGrpc("/containerd.services.snapshots.v1.Snapshots/Stat", "OK", 0.0001);
  std::string t = m.expose();
  EXPECT_TRUE(has(t,
                  "snapimport_grpc_requests_total{code=\"NOT_FOUND\",method=\"/"
                  "containerd.services.snapshots.v1.Snapshots/Stat\"} 1"))
      << t;
  EXPECT_TRUE(has(t,
                  "snapimport_grpc_request_duration_seconds_count{method=\"/"
                  "containerd.services.snapshots.v1.Snapshots/Stat\"} 2"))
      << t;
}

TEST(Metrics, ScrapeHooksRefreshGaugesUntilRemoved) {
  Metrics m;
  int calls = 0;
  int id = m.onScrape([&](Metrics& mm) {
    ++calls;
    mm.snapshots("committed").Set(7);
  });
  EXPECT_TRUE(has(m.expose(), "snapimport_snapshots{kind=\"committed\"} 7"));
  m.removeScrapeHook(id);
  m.expose();
  EXPECT_EQ(calls, 1);
}

TEST(Metrics, LabelValuesAreEscaped) {
  Metrics m;
  m.recordGrpc("a\"b\\c\nd", "OK", 0);
  EXPECT_TRUE(has(m.expose(), "method=\"a\\\"b\\\\c\\nd\"")) << m.expose();
}

}  // namespace
}  // namespace snapimport::metrics
