// A full disk in the store: every write path reports ResourceExhausted with the path and
// "No space left on device", counts it, and leaves state that is intact and usable once space is
// freed. The filesystem tests fill a real tmpfs (SmallFilesystem), so ENOSPC comes from the kernel.
#include "store/NoSpace.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include "SmallFilesystem.h"
#include "common/Metrics.h"
#include "store/ContentFile.h"
#include "store/ContentStore.h"
#include "store/Database.h"
#include "store/Ingest.h"
#include "store/SnapshotStore.h"
#include "store/StoreError.h"

namespace snapimport::store {
namespace {

namespace fs = std::filesystem;

const std::string kNoSpace = std::strerror(ENOSPC);

double noSpaceCount(std::string_view area) {
  return metrics::Metrics::daemon().noSpaceErrors(area).Value();
}

// The StoreError fn throws (a test failure if none).
StoreError errorFrom(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const StoreError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a StoreError";
  return StoreError(ErrorClass::Internal, "");
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string randomBytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

std::string integrityOf(const fs::path& dbFile) {
  Database db(dbFile);
  Statement q = db.prepare("PRAGMA integrity_check");
  std::string result;
  while (q.step()) result += q.text(0);
  return result;
}

TEST(NoSpace, FailSystemTellsAFullDiskFromOtherErrors) {
  double before = noSpaceCount(kAreaContent);
  StoreError full =
      errorFrom([] { failSystem(kAreaContent, "create ingest file /r/data failed", ENOSPC); });
  EXPECT_EQ(full.errorClass(), ErrorClass::ResourceExhausted);
  EXPECT_EQ(std::string(full.what()), "create ingest file /r/data failed: " + kNoSpace);
  EXPECT_EQ(noSpaceCount(kAreaContent), before + 1);

  EXPECT_EQ(errorFrom([] { failSystem(kAreaSnapshots, "x", EDQUOT); }).errorClass(),
            ErrorClass::ResourceExhausted);
  EXPECT_EQ(errorFrom([] { failSystem(kAreaSnapshots, "x", EIO); }).errorClass(),
            ErrorClass::Internal);
  EXPECT_EQ(noSpaceCount(kAreaContent), before + 1)
      << "EDQUOT/EIO in another area were counted here";
}

TEST(NoSpace, MentionsNoSpaceReadsStrerrorText) {
  EXPECT_TRUE(mentionsNoSpace("cannot write \"big.bin\": " + kNoSpace));
  EXPECT_TRUE(mentionsNoSpace(std::string("x: ") + std::strerror(EDQUOT)));
  EXPECT_FALSE(mentionsNoSpace("cannot write \"big.bin\": Input/output error"));
}

TEST(NoSpace, WriteToDevFullIsResourceExhaustedNamingTheTarget) {
  UniqueFd fd(::open("/dev/full", O_WRONLY | O_CLOEXEC));
  if (!fd) GTEST_SKIP() << "/dev/full: " << std::strerror(errno);
  StoreError e = errorFrom([&] { pwriteAll(fd.get(), "abc", 3, 0, "write 3 bytes to /dev/full"); });
  EXPECT_EQ(e.errorClass(), ErrorClass::ResourceExhausted);
  EXPECT_TRUE(contains(e.what(), "write 3 bytes to /dev/full")) << e.what();
  EXPECT_TRUE(contains(e.what(), kNoSpace)) << e.what();
}

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!disk.mounted()) GTEST_SKIP() << "cannot mount a small tmpfs: " << disk.whyNot();
  }
  testing::SmallFilesystem disk{8 << 20};
  fs::path root() const { return disk.path() / "root"; }
};

TEST_F(FullDiskTest, ContentWriteKeepsWhatWasAcknowledgedAndResumesOnceSpaceIsFreed) {
  const std::string data = randomBytes(3 << 20, 1);
  const std::string ref = "layer-sha256:full";
  const size_t first = 1 << 20;
  ContentStore content(root());
  content.setReserveBytes(0);  // the kernel's ENOSPC, not the reserve
  {
    auto ingest = content.openIngest(ref, static_cast<int64_t>(data.size()), Digest::of(data));
    ingest->write(data.substr(0, first));
    disk.fill(256 << 10);
    double before = noSpaceCount(kAreaContent);
    StoreError e = errorFrom([&] { ingest->write(data.substr(first)); });
    EXPECT_EQ(e.errorClass(), ErrorClass::ResourceExhausted);
    EXPECT_TRUE(contains(e.what(), (content.ingestDir(ref) / "data").string())) << e.what();
    EXPECT_TRUE(contains(e.what(), kNoSpace)) << e.what();
    EXPECT_EQ(noSpaceCount(kAreaContent), before + 1);
    EXPECT_EQ(ingest->offset(), static_cast<int64_t>(first));
  }
  // Nothing half-made became a blob; the ingest holds exactly the acknowledged bytes.
  EXPECT_FALSE(content.contains(Digest::of(data)));
  EXPECT_EQ(content.status(ref).offset, static_cast<int64_t>(first));
  EXPECT_EQ(fs::file_size(content.ingestDir(ref) / "data"), first);

  disk.freeFiller();
  auto ingest = content.openIngest(ref, static_cast<int64_t>(data.size()), Digest::of(data));
  ASSERT_EQ(ingest->offset(), static_cast<int64_t>(first));
  ingest->write(data.substr(first));
  EXPECT_EQ(ingest->commit(static_cast<int64_t>(data.size()), Digest::of(data), {}),
            Digest::of(data));
  EXPECT_TRUE(content.contains(Digest::of(data)));
  EXPECT_EQ(integrityOf(root() / "meta.db"), "ok");
}

TEST_F(FullDiskTest, ACommitThatCannotRecordItsBlobLeavesNoBlobAndCanBeRetried) {
  const std::string data = randomBytes(64 << 10, 2);
  const std::string ref = "config-sha256:full";
  ContentStore content(root());
  content.setReserveBytes(0);
  {
    auto ingest = content.openIngest(ref, static_cast<int64_t>(data.size()), std::nullopt);
    ingest->write(data);
    disk.fill();
    StoreError e = errorFrom([&] {
      ingest->commit(static_cast<int64_t>(data.size()), Digest::of(data), {{"k", "v"}});
    });
    EXPECT_EQ(e.errorClass(), ErrorClass::ResourceExhausted);
    EXPECT_TRUE(contains(e.what(), (root() / "meta.db").string())) << e.what();
    EXPECT_TRUE(contains(e.what(), kNoSpace)) << e.what();
  }
  EXPECT_FALSE(content.contains(Digest::of(data)));
  disk.freeFiller();
  auto ingest = content.openIngest(ref, static_cast<int64_t>(data.size()), std::nullopt);
  EXPECT_EQ(ingest->offset(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(ingest->commit(static_cast<int64_t>(data.size()), Digest::of(data), {{"k", "v"}}),
            Digest::of(data));
  EXPECT_EQ(content.info(Digest::of(data)).labels, (Labels{{"k", "v"}}));
  EXPECT_EQ(integrityOf(root() / "meta.db"), "ok");
}

TEST_F(FullDiskTest, ContentWritesStopShortOfTheReserveSoTheDatabaseCanStillCommit) {
  const std::string big = randomBytes(6 << 20, 3), small = randomBytes(4096, 4);
  ContentStore content(root());
  content.setReserveBytes(2 << 20);
  disk.fill(5 << 20);
  {
    auto ingest = content.openIngest("layer-big", static_cast<int64_t>(big.size()), std::nullopt);
    StoreError e = errorFrom([&] {
      for (size_t off = 0; off < big.size(); off += 256 << 10)
        ingest->write(big.substr(off, 256 << 10));
    });
    EXPECT_EQ(e.errorClass(), ErrorClass::ResourceExhausted);
    EXPECT_TRUE(contains(e.what(), (content.ingestDir("layer-big") / "data").string())) << e.what();
    EXPECT_TRUE(contains(e.what(), "stay for the database")) << e.what();
    EXPECT_TRUE(contains(e.what(), kNoSpace)) << e.what();
    EXPECT_GE(disk.freeBytes(), 1u << 20) << "the write ate into the reserve";
  }
  // What the reserve is for: a small blob's commit (a record in meta.db) and a removal still work.
  auto ingest = content.openIngest("config", static_cast<int64_t>(small.size()), std::nullopt);
  content.setReserveBytes(0);
  ingest->write(small);
  Digest d = ingest->commit(static_cast<int64_t>(small.size()), Digest::of(small), {{"k", "v"}});
  EXPECT_EQ(content.info(d).labels, (Labels{{"k", "v"}}));
  content.abort("layer-big");
  content.remove(d);
  EXPECT_EQ(integrityOf(root() / "meta.db"), "ok");
}

TEST_F(FullDiskTest, ADeleteOnAFullDiskRemovesTheBlobEvenIfItsRecordMustWait) {
  const std::string data = randomBytes(64 << 10, 5);
  ContentStore content(root());
  content.setReserveBytes(0);
  auto ingest = content.openIngest("blob", static_cast<int64_t>(data.size()), std::nullopt);
  ingest->write(data);
  Digest d = ingest->commit(static_cast<int64_t>(data.size()), Digest::of(data), {});
  disk.fill();
  content.remove(d);  // frees the blob's space whether or not the record can follow
  EXPECT_FALSE(content.contains(d));
  EXPECT_EQ(errorFrom([&] { content.info(d); }).errorClass(), ErrorClass::NotFound);
  disk.freeFiller();
  EXPECT_EQ(integrityOf(root() / "meta.db"), "ok");
}

TEST_F(FullDiskTest, APrepareOnAFullDiskLeavesNeitherRecordNorDirectory) {
  SnapshotStore snapshots(root(), OverlayOptions{});
  snapshots.prepare("before", "", {});
  disk.fill();
  StoreError e = errorFrom([&] { snapshots.prepare("k8s.io/1/extract 1", "", {}); });
  EXPECT_EQ(e.errorClass(), ErrorClass::ResourceExhausted);
  EXPECT_TRUE(contains(e.what(), root().string())) << e.what();
  EXPECT_TRUE(contains(e.what(), kNoSpace)) << e.what();
  size_t records = 0;
  snapshots.list(Filter::parseAll({}), [&](const SnapshotInfo&) { ++records; });
  EXPECT_EQ(records, 1u);
  std::vector<std::string> dirs;
  for (const auto& d : fs::directory_iterator(root() / "snapshots"))
    dirs.push_back(d.path().filename());
  EXPECT_EQ(dirs, std::vector<std::string>{"1"});
  disk.freeFiller();
  snapshots.prepare("k8s.io/1/extract 1", "", {});
  EXPECT_EQ(integrityOf(root() / "meta.db"), "ok");
}

TEST_F(FullDiskTest, ATransactionOnAFullDiskRollsBackAndNamesTheDatabase) {
  fs::create_directories(root());
  fs::path file = root() / "meta.db";
  {
    Database db(file);
    db.exec("CREATE TABLE t (v TEXT NOT NULL)");
    db.prepare("INSERT INTO t (v) VALUES ('kept')").run();
    disk.fill();
    double before = noSpaceCount(kAreaDatabase);
    StoreError e = errorFrom([&] {
      Transaction tx(db);
      Statement put = db.prepare("INSERT INTO t (v) VALUES (?)");
      for (int i = 0; i < 200; ++i) {
        put.bind(1, randomBytes(512, static_cast<unsigned>(i))).run();
        put.reset();
      }
      tx.commit();
    });
    EXPECT_EQ(e.errorClass(), ErrorClass::ResourceExhausted);
    EXPECT_TRUE(contains(e.what(), file.string())) << e.what();
    EXPECT_TRUE(contains(e.what(), kNoSpace)) << e.what();
    EXPECT_GE(noSpaceCount(kAreaDatabase), before + 1);
  }
  disk.freeFiller();
  EXPECT_EQ(integrityOf(file), "ok");
  Database db(file);
  Statement q = db.prepare("SELECT group_concat(v) FROM t");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.text(0), "kept");
}

TEST_F(FullDiskTest, OpeningAFreshRootOnAFullDiskFailsNamingThePath) {
  disk.fill();
  StoreError e = errorFrom([&] { SnapshotStore snapshots(root(), OverlayOptions{}); });
  EXPECT_EQ(e.errorClass(), ErrorClass::ResourceExhausted);
  EXPECT_TRUE(contains(e.what(), root().string())) << e.what();
  EXPECT_TRUE(contains(e.what(), kNoSpace)) << e.what();
  disk.freeFiller();
  SnapshotStore snapshots(root(), OverlayOptions{});
  snapshots.prepare("a", "", {});
  ContentStore content(root());
  EXPECT_EQ(integrityOf(root() / "meta.db"), "ok");
}

}  // namespace
}  // namespace snapimport::store
