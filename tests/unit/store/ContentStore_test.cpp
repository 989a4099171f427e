#include "store/ContentStore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "TempDir.h"
#include "store/Database.h"
#include "store/Ingest.h"
#include "store/StoreError.h"

namespace snapimport::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 2654435761u + seed) >> 13);
  return s;
}

template <typename Fn>
ErrorClass classOf(Fn&& fn) {
  try {
    fn();
  } catch (const StoreError& e) {
    return e.errorClass();
  }
  ADD_FAILURE() << "no StoreError thrown";
  return ErrorClass::Internal;
}

std::string readAll(const ContentReader& r) {
  std::string out(static_cast<size_t>(r.size()), '\0');
  EXPECT_EQ(r.readAt(0, out.data(), out.size()), out.size());
  return out;
}

size_t entriesIn(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open() {
    store_.reset();
    store_ = std::make_unique<ContentStore>(dir_.path());
    store_->setLockTimeout(20ms);
  }
  Digest put(const std::string& ref, const std::string& data, const Labels& labels = {}) {
    auto ingest = store_->openIngest(ref, static_cast<int64_t>(data.size()), std::nullopt);
    ingest->write(data);
    return ingest->commit(static_cast<int64_t>(data.size()), Digest::of(data), labels);
  }
  fs::path ingestRoot() const { return dir_.path() / "content" / "ingest"; }
  fs::path blobsDir() const { return dir_.path() / "content" / "blobs" / "sha256"; }

  testing::TempDir dir_;
  std::unique_ptr<ContentStore> store_;
};

TEST_F(ContentStoreTest, WriteCommitInfoAndRead) {
  std::string data = bytes(3 << 20, 1);
  auto before = ContentClock::now();
  auto ingest = store_->openIngest("default/1/layer-sha256:abc", static_cast<int64_t>(data.size()),
                                   std::nullopt);
  EXPECT_EQ(ingest->offset(), 0);
  ingest->write(data.substr(0, 1000));
  ingest->write(data.substr(1000));
  EXPECT_EQ(ingest->offset(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(ingest->digest(), Digest::of(data));
  Digest d = ingest->commit(0, std::nullopt, {{"containerd.io/gc.root", "x"}, {"empty", ""}});
  EXPECT_FALSE(ingest->isOpen());
  EXPECT_EQ(d, Digest::of(data));

  BlobInfo info = store_->info(d);
  EXPECT_EQ(info.size, static_cast<int64_t>(data.size()));
  EXPECT_EQ(info.labels, (Labels{{"containerd.io/gc.root", "x"}}));  // empty values are not kept
  EXPECT_GE(info.createdAt, before);
  EXPECT_LE(info.createdAt, ContentClock::now());
  EXPECT_EQ(info.createdAt, info.updatedAt);
  EXPECT_EQ(readAll(store_->openReader(d)), data);

  struct stat st {};
  ASSERT_EQ(stat(store_->blobPath(d).c_str(), &st), 0);
  EXPECT_EQ(store_->blobPath(d), blobsDir() / std::string(d.hex()));
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(entriesIn(ingestRoot()), 0u);
  EXPECT_EQ(classOf([&] { store_->status("default/1/layer-sha256:abc"); }), ErrorClass::NotFound);
}

TEST_F(ContentStoreTest, CommitRefusesWrongSizeOrDigestAndKeepsTheBytes) {
  std::string data = bytes(5000, 2);
  auto ingest = store_->openIngest("r", 0, std::nullopt);
  ingest->write(data);
  EXPECT_EQ(classOf([&] { ingest->commit(4999, std::nullopt, {}); }),
            ErrorClass::FailedPrecondition);
  EXPECT_FALSE(ingest->isOpen());
  ingest = store_->openIngest("r", 0, std::nullopt);
  EXPECT_EQ(ingest->offset(), 5000);
  EXPECT_EQ(classOf([&] { ingest->commit(5000, Digest::of("other"), {}); }),
            ErrorClass::FailedPrecondition);
  EXPECT_FALSE(store_->contains(Digest::of(data)));
  EXPECT_FALSE(store_->contains(Digest::of("other")));
  EXPECT_EQ(entriesIn(blobsDir()), 0u);
  EXPECT_EQ(store_->status("r").offset, 5000);
  ingest = store_->openIngest("r", 0, std::nullopt);
  EXPECT_EQ(ingest->commit(5000, Digest::of(data), {}), Digest::of(data));
}

TEST_F(ContentStoreTest, ResumesAfterTheStoreIsReopened) {
  std::string data = bytes(2 << 20, 3);
  Digest want = Digest::of(data);
  ContentTime started;
  {
    auto ingest = store_->openIngest("ns/5/layer", static_cast<int64_t>(data.size()), want);
    started = ingest->startedAt();
    ingest->write(data.substr(0, 700000));
  }
  open();
  IngestStatus s = store_->status("ns/5/layer");
  EXPECT_EQ(s.ref, "ns/5/layer");
  EXPECT_EQ(s.offset, 700000);
  EXPECT_EQ(s.total, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(s.expected);
  EXPECT_EQ(*s.expected, want);
  EXPECT_EQ(s.startedAt, started);

  auto ingest = store_->openIngest("ns/5/layer", 0, std::nullopt);
  EXPECT_EQ(ingest->offset(), 700000);
  EXPECT_EQ(ingest->total(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(ingest->digest(), Digest::of(data.substr(0, 700000)));
  ingest->write(data.substr(700000));
  EXPECT_EQ(ingest->commit(0, want, {}), want);
  EXPECT_EQ(readAll(store_->openReader(want)), data);
}

TEST_F(ContentStoreTest, ResumeWithADifferentTotalStartsOver) {
  {
    auto ingest = store_->openIngest("r", 100, std::nullopt);
    ingest->write(bytes(50, 4));
  }
  auto ingest = store_->openIngest("r", 200, std::nullopt);
  EXPECT_EQ(ingest->offset(), 0);
  EXPECT_EQ(ingest->total(), 200);
}

TEST_F(ContentStoreTest, TruncateStartsTheDigestAgain) {
  auto ingest = store_->openIngest("r", 0, std::nullopt);
  ingest->write(bytes(1 << 20, 5));
  ingest->truncate();
  EXPECT_EQ(ingest->offset(), 0);
  std::string data = bytes(3000, 6);
  ingest->write(data);
  EXPECT_EQ(ingest->commit(3000, Digest::of(data), {}), Digest::of(data));
  EXPECT_EQ(readAll(store_->openReader(Digest::of(data))), data);
}

TEST_F(ContentStoreTest, ARefHasOneWriterAtATime) {
  auto first = store_->openIngest("ref", 0, std::nullopt);
  EXPECT_EQ(classOf([&] { store_->openIngest("ref", 0, std::nullopt); }), ErrorClass::Unavailable);
  EXPECT_EQ(classOf([&] { store_->abort("ref"); }), ErrorClass::Unavailable);
  auto other = store_->openIngest("other", 0, std::nullopt);  // other refs are not affected
  // A writer that lets go within the lock timeout is waited for.
  store_->setLockTimeout(5s);
  std::thread closer([&] {
    std::this_thread::sleep_for(50ms);
    first->close();
  });
  auto second = store_->openIngest("ref", 0, std::nullopt);
  closer.join();
  EXPECT_TRUE(second->isOpen());
}

TEST_F(ContentStoreTest, ExpectedDigestAlreadyPresentIsAlreadyExistsAndDropsTheIngest) {
  std::string data = bytes(100, 7);
  {
    auto ingest = store_->openIngest("r", 0, std::nullopt);
    ingest->write(data.substr(0, 10));
  }
  Digest d = put("other", data);
  EXPECT_EQ(classOf([&] { store_->openIngest("r", 0, d); }), ErrorClass::AlreadyExists);
  EXPECT_EQ(classOf([&] { store_->status("r"); }), ErrorClass::NotFound);
  EXPECT_EQ(entriesIn(ingestRoot()), 0u);
  // Committing the same bytes under another ref, without naming the digest, is AlreadyExists too.
  auto again = store_->openIngest("r2", 0, std::nullopt);
  again->write(data);
  EXPECT_EQ(classOf([&] { again->commit(100, std::nullopt, {}); }), ErrorClass::AlreadyExists);
  EXPECT_EQ(entriesIn(ingestRoot()), 0u);
  EXPECT_EQ(classOf([&] { store_->status("r2"); }), ErrorClass::NotFound);
}

TEST_F(ContentStoreTest, AbortRemovesTheIngest) {
  {
    auto ingest = store_->openIngest("a/b", 0, std::nullopt);
    ingest->write("hello");
  }
  store_->abort("a/b");
  EXPECT_EQ(entriesIn(ingestRoot()), 0u);
  EXPECT_TRUE(store_->listStatuses({}).empty());
  EXPECT_EQ(classOf([&] { store_->abort("a/b"); }), ErrorClass::NotFound);
  EXPECT_EQ(classOf([&] { store_->abort(""); }), ErrorClass::InvalidArgument);
}

TEST_F(ContentStoreTest, RefsNeverBecomePaths) {
  for (const std::string ref : {"../../escape", "/etc/passwd", "..", "a/../../b"}) {
    fs::path dir = store_->ingestDir(ref);
    EXPECT_EQ(dir.parent_path(), ingestRoot()) << ref;
    EXPECT_EQ(dir.filename().string(), std::string(Digest::of(ref).hex())) << ref;
    auto ingest = store_->openIngest(ref, 0, std::nullopt);
    ingest->write("x");
  }
  EXPECT_EQ(entriesIn(ingestRoot()), 4u);
  EXPECT_FALSE(fs::exists(dir_.path() / "escape"));
  EXPECT_FALSE(fs::exists(dir_.path().parent_path() / "escape"));
  EXPECT_EQ(classOf([&] { store_->openIngest(std::string("a\0b", 3), 0, std::nullopt); }),
            ErrorClass::InvalidArgument);
  EXPECT_EQ(classOf([&] { store_->openIngest("", 0, std::nullopt); }), ErrorClass::InvalidArgument);
}

TEST_F(ContentStoreTest, UpdateLabelsLikeContainerd) {
  Digest d = put("r", "content", {{"a", "1"}, {"b", "2"}});
  ContentTime created = store_->info(d).createdAt;

  BlobInfo info = store_->update(d, {{"a", "x"}, {"c", "3"}}, {});  // no paths: replace all
  EXPECT_EQ(info.labels, (Labels{{"a", "x"}, {"c", "3"}}));
  EXPECT_EQ(info.createdAt, created);
  EXPECT_GT(info.updatedAt, created);

  info = store_->update(d, {{"a", "y"}, {"z", "ignored"}}, {"labels.a", "labels.c"});
  EXPECT_EQ(info.labels, (Labels{{"a", "y"}}));  // c was named without a value: removed
  info = store_->update(d, {{"k.with.dots", "v"}}, {"labels.k.with.dots"});
  EXPECT_EQ(info.labels, (Labels{{"a", "y"}, {"k.with.dots", "v"}}));
  info = store_->update(d, {{"only", "this"}}, {"labels"});
  EXPECT_EQ(info.labels, (Labels{{"only", "this"}}));
  EXPECT_EQ(store_->info(d).labels, info.labels);

  EXPECT_EQ(classOf([&] { store_->update(d, {}, {"size"}); }), ErrorClass::InvalidArgument);
  EXPECT_EQ(classOf([&] {
              store_->update(d, {{std::string(4000, 'k'), std::string(100, 'v')}}, {});
            }),
            ErrorClass::InvalidArgument);
  EXPECT_EQ(classOf([&] { store_->update(Digest::of("missing"), {}, {}); }), ErrorClass::NotFound);
  EXPECT_EQ(store_->info(d).labels, info.labels);  // refused updates change nothing
}

TEST_F(ContentStoreTest, CommitRefusesOversizedLabels) {
  auto ingest = store_->openIngest("r", 0, std::nullopt);
  ingest->write("abc");
  EXPECT_EQ(classOf([&] {
              ingest->commit(3, std::nullopt, {{"k", std::string(5000, 'v')}});
            }),
            ErrorClass::InvalidArgument);
  EXPECT_FALSE(store_->contains(Digest::of("abc")));
}

TEST_F(ContentStoreTest, ListFiltersOnDigestSizeAndLabels) {
  Digest a = put("a", "aaaa", {{"kind", "layer"}, {"containerd.io/gc.root", "t"}});
  Digest b = put("b", "bbbbbbbb", {{"kind", "config"}});
  Digest c = put("c", "cc");
  auto digests = [&](const std::vector<std::string>& filters) {
    std::vector<std::string> out;
    for (const auto& info : store_->list(filters)) out.push_back(info.digest.str());
    std::sort(out.begin(), out.end());
    return out;
  };
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(digests({}), sorted({a.str(), b.str(), c.str()}));
  EXPECT_EQ(digests({"digest==" + a.str()}), sorted({a.str()}));
  EXPECT_EQ(digests({"size==8"}), sorted({b.str()}));
  EXPECT_EQ(digests({"labels.kind==layer"}), sorted({a.str()}));
  EXPECT_EQ(digests({"labels.kind"}), sorted({a.str(), b.str()}));
  EXPECT_EQ(digests({"labels.kind!=layer"}), sorted({b.str(), c.str()}));
  EXPECT_EQ(digests({"labels.\"containerd.io/gc.root\""}), sorted({a.str()}));
  EXPECT_EQ(digests({"labels.kind~=^con"}), sorted({b.str()}));
  EXPECT_EQ(digests({"labels.kind==layer", "size==2"}), sorted({a.str(), c.str()}));  // OR
  EXPECT_EQ(digests({"labels.kind==layer,size==2"}), std::vector<std::string>{});     // AND
  EXPECT_EQ(classOf([&] { store_->list({"labels.kind=="}); }), ErrorClass::InvalidArgument);
  // Files in the blob directory that are not named like a digest are not blobs.
  std::ofstream(blobsDir() / "not-a-digest") << "x";
  EXPECT_EQ(store_->list({}).size(), 3u);
}

TEST_F(ContentStoreTest, ListStatusesFiltersOnRef) {
  for (const std::string ref : {"ns/1/layer-a", "ns/2/layer-b", "ns/3/config-c"}) {
    store_->openIngest(ref, 10, std::nullopt)->write("x");
  }
  EXPECT_EQ(store_->listStatuses({}).size(), 3u);
  auto layers = store_->listStatuses({"ref~=layer-"});
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0].ref, "ns/1/layer-a");
  EXPECT_EQ(layers[0].offset, 1);
  EXPECT_EQ(layers[0].total, 10);
  EXPECT_EQ(store_->listStatuses({"ref==\"ns/3/config-c\""}).size(), 1u);
  EXPECT_EQ(classOf([&] { store_->listStatuses({"ref=="}); }), ErrorClass::InvalidArgument);
}

TEST_F(ContentStoreTest, DeleteForgetsTheLabelsToo) {
  Digest d = put("r", "data", {{"a", "1"}});
  store_->remove(d);
  EXPECT_FALSE(store_->contains(d));
  EXPECT_EQ(classOf([&] { store_->info(d); }), ErrorClass::NotFound);
  EXPECT_EQ(classOf([&] { store_->openReader(d); }), ErrorClass::NotFound);
  EXPECT_EQ(classOf([&] { store_->remove(d); }), ErrorClass::NotFound);
  put("r", "data");
  EXPECT_TRUE(store_->info(d).labels.empty());
}

TEST_F(ContentStoreTest, ReadersOutliveDelete) {
  Digest d = put("r", "still readable");
  ContentReader reader = store_->openReader(d);
  store_->remove(d);
  EXPECT_EQ(readAll(reader), "still readable");
}

// openReader keeps a blob's file open between Reads (containerd reads 32 KiB per RPC); a Delete
// must still be final for every Read that starts after it, and a blob committed again afresh.
TEST_F(ContentStoreTest, ARecentlyReadBlobIsGoneOnceDeleted) {
  Digest d = put("r", "read moments ago");
  EXPECT_EQ(readAll(store_->openReader(d)), "read moments ago");
  EXPECT_EQ(readAll(store_->openReader(d)), "read moments ago");
  store_->remove(d);
  EXPECT_EQ(classOf([&] { store_->openReader(d); }), ErrorClass::NotFound);
  put("r2", "read moments ago");
  ContentReader again = store_->openReader(d);
  store_->remove(d);
  EXPECT_EQ(readAll(again), "read moments ago");  // a Read under way finishes
  EXPECT_EQ(classOf([&] { store_->openReader(d); }), ErrorClass::NotFound);
}

TEST_F(ContentStoreTest, StartUpRemovesWhatACrashLeftHalfDone) {
  Digest d = put("r", "blob");
  {
    auto ingest = store_->openIngest("kept", 0, std::nullopt);
    ingest->write("abc");
  }
  store_.reset();
  // An ingest directory without a record, and a record without its data.
  fs::create_directories(ingestRoot() / "stray" / "sub");
  fs::create_directory(ingestRoot() / std::string(Digest::of("x").hex()));
  {
    Database db(dir_.path() / "meta.db");
    db.exec("INSERT INTO content_ingests VALUES ('" + std::string(Digest::of("gone").hex()) +
            "', 'gone', 0, '', 1, 1)");
    db.exec("INSERT INTO content_blobs VALUES ('" + Digest::of("nofile").str() + "', 6, 1, 1)");
  }
  open();
  EXPECT_EQ(entriesIn(ingestRoot()), 1u);
  EXPECT_EQ(store_->status("kept").offset, 3);
  EXPECT_EQ(classOf([&] { store_->status("gone"); }), ErrorClass::NotFound);
  ASSERT_EQ(store_->listStatuses({}).size(), 1u);
  EXPECT_EQ(store_->list({}).size(), 1u);
  EXPECT_EQ(store_->info(d).size, 4);
  EXPECT_FALSE(store_->contains(Digest::of("nofile")));
}

TEST_F(ContentStoreTest, ABlobFileWithoutARecordIsStillABlob) {
  std::string data = "placed by hand";
  Digest d = Digest::of(data);
  std::ofstream(blobsDir() / std::string(d.hex())) << data;
  BlobInfo info = store_->info(d);
  EXPECT_EQ(info.size, static_cast<int64_t>(data.size()));
  EXPECT_TRUE(info.labels.empty());
  EXPECT_EQ(store_->list({}).size(), 1u);
  EXPECT_EQ(store_->update(d, {{"a", "b"}}, {}).labels, (Labels{{"a", "b"}}));
  EXPECT_EQ(store_->info(d).createdAt, info.createdAt);
}

}  // namespace
}  // namespace snapimport::store
