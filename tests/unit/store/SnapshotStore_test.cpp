#include "store/SnapshotStore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "TempDir.h"
#include "store/StoreError.h"

namespace snapimport::store {
namespace {

namespace fs = std::filesystem;

ErrorClass errorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const StoreError& e) {
    return e.errorClass();
  }
  ADD_FAILURE() << "expected a StoreError";
  return ErrorClass::Internal;
}

class SnapshotStoreTest : public ::testing::Test {
 protected:
  testing::TempDir tmp;
  fs::path root = tmp.path() / "root";
  std::unique_ptr<SnapshotStore> store = std::make_unique<SnapshotStore>(root, OverlayOptions{});

  std::vector<std::string> names(const Filter& f = Filter::parseAll({})) {
    std::vector<std::string> out;
    store->list(f, [&](const SnapshotInfo& i) { out.push_back(i.name); });
    return out;
  }
  std::vector<std::string> dirs() {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(root / "snapshots")) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
};

TEST_F(SnapshotStoreTest, RootAndSnapshotsDirAre0700) {
  struct stat st {};
  ASSERT_EQ(stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((root / "snapshots").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(SnapshotStoreTest, KeysNeverBecomePaths) {
  auto m = store->prepare("../../escape me/x", "", {});
  EXPECT_EQ(m[0].source, (root / "snapshots" / "1" / "fs").string());
  EXPECT_FALSE(fs::exists(tmp.path() / "escape me"));
  EXPECT_EQ(dirs(), (std::vector<std::string>{"1"}));
}

TEST_F(SnapshotStoreTest, PrepareCreatesFsAndWorkWithContainerdModes) {
  store->prepare("a", "", {});
  struct stat st {};
  ASSERT_EQ(stat((root / "snapshots/1/fs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((root / "snapshots/1/work").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  store->view("v", "", {});
  EXPECT_FALSE(fs::exists(root / "snapshots/2/work"));  // views have no upper layer
}

TEST_F(SnapshotStoreTest, CommitKeepsDirectoryMovesRecordAndReplacesLabels) {
  store->prepare("active", "", {{"containerd.io/snapshot/x", "1"}});
  std::ofstream(root / "snapshots/1/fs/hello") << "world";
  store->commit("layer1", "active", {{"containerd.io/snapshot.ref", "sha256:aa"}});
  EXPECT_EQ(errorOf([&] { store->stat("active"); }), ErrorClass::NotFound);
  SnapshotInfo i = store->stat("layer1");
  EXPECT_EQ(i.kind, Kind::Committed);
  EXPECT_EQ(i.labels, (Labels{{"containerd.io/snapshot.ref", "sha256:aa"}}));
  EXPECT_TRUE(fs::exists(root / "snapshots/1/fs/hello"));
  Usage u = store->usage("layer1");
  EXPECT_EQ(u.inodes, 2);
  EXPECT_GT(u.size, 0);

  auto m = store->prepare("child", "layer1", {});
  EXPECT_EQ(m[0].type, "overlay");
  EXPECT_EQ(store->stat("child").parent, "layer1");
}

TEST_F(SnapshotStoreTest, UsageOfCommittedIsStoredNotLive) {
  store->prepare("a", "", {});
  store->commit("c", "a", {});
  Usage before = store->usage("c");
  std::ofstream(root / "snapshots/1/fs/late") << std::string(65536, 'z');
  EXPECT_EQ(store->usage("c").inodes, before.inodes);
}

TEST_F(SnapshotStoreTest, ErrorClassesMatchContainerd) {
  store->prepare("a", "", {});
  EXPECT_EQ(errorOf([&] { store->prepare("a", "", {}); }), ErrorClass::AlreadyExists);
  EXPECT_EQ(errorOf([&] { store->prepare("b", "missing", {}); }), ErrorClass::NotFound);
  EXPECT_EQ(errorOf([&] { store->prepare("b", "a", {}); }), ErrorClass::InvalidArgument);
  store->view("v", "", {});
  EXPECT_EQ(errorOf([&] { store->commit("x", "v", {}); }), ErrorClass::FailedPrecondition);
  store->commit("c", "a", {});
  EXPECT_EQ(errorOf([&] { store->mounts("c"); }), ErrorClass::FailedPrecondition);
  store->prepare("a2", "c", {});
  EXPECT_EQ(errorOf([&] { store->commit("c", "a2", {}); }), ErrorClass::AlreadyExists);
  EXPECT_EQ(errorOf([&] { store->remove("c"); }), ErrorClass::FailedPrecondition);
  EXPECT_EQ(errorOf([&] { store->remove("nope"); }), ErrorClass::NotFound);
  EXPECT_EQ(errorOf([&] { store->mounts("nope"); }), ErrorClass::NotFound);
  EXPECT_EQ(errorOf([&] { store->usage("nope"); }), ErrorClass::NotFound);
  EXPECT_EQ(errorOf([&] { store->prepare("", "", {}); }), ErrorClass::InvalidArgument);
  EXPECT_EQ(errorOf([&] { store->prepare(std::string("a\0b", 3), "", {}); }),
            ErrorClass::InvalidArgument);
  EXPECT_EQ(errorOf([&] {
              store->prepare("big", "", {{"k", std::string(4096, 'v')}});
            }),
            ErrorClass::InvalidArgument);
}

TEST_F(SnapshotStoreTest, UpdateOnlyTouchesLabels) {
  store->prepare("a", "", {{"keep", "1"}, {"drop", "2"}});
  SnapshotInfo in;
  in.name = "a";
  in.labels = {{"new", "3"}};
  SnapshotInfo out = store->update(in, {"labels.new", "labels.drop"});
  EXPECT_EQ(out.labels, (Labels{{"keep", "1"}, {"new", "3"}}));
  out = store->update(in, {});
  EXPECT_EQ(out.labels, (Labels{{"new", "3"}}));
  in.labels = {{"x", "y"}, {"empty", ""}};
  out = store->update(in, {"labels"});
  EXPECT_EQ(out.labels, (Labels{{"x", "y"}}));
  for (const char* path : {"name", "parent", "kind", "created_at"}) {
    EXPECT_EQ(errorOf([&] { store->update(in, {path}); }), ErrorClass::InvalidArgument) << path;
  }
  EXPECT_EQ(store->stat("a").labels, (Labels{{"x", "y"}}));
  in.name = "missing";
  EXPECT_EQ(errorOf([&] { store->update(in, {}); }), ErrorClass::NotFound);
}

TEST_F(SnapshotStoreTest, ListFilters) {
  store->prepare("a", "", {{"containerd.io/snapshot.ref", "sha256:1"}});
  store->commit("c1", "a", {{"containerd.io/snapshot.ref", "sha256:1"}});
  store->prepare("b", "c1", {});
  store->view("v", "c1", {});
  EXPECT_EQ(names().size(), 3u);
  EXPECT_EQ(names(Filter::parse("kind==view")), (std::vector<std::string>{"v"}));
  EXPECT_EQ(names(Filter::parseAll({"kind==view", "kind==active"})),
            (std::vector<std::string>{"b", "v"}));
  // What containerd sends to find an imported base layer: an empty parent must match.
  EXPECT_EQ(names(Filter::parse("labels.\"containerd.io/snapshot.ref\"==sha256:1,parent==\"\"")),
            (std::vector<std::string>{"c1"}));
  EXPECT_EQ(
      names(Filter::parse("labels.\"containerd.io/snapshot.ref\"==sha256:1,parent==\"c1\"")).size(),
      0u);
  EXPECT_EQ(names(Filter::parse("parent==c1,kind==active")), (std::vector<std::string>{"b"}));
}

TEST_F(SnapshotStoreTest, RemoveLeavesDirectoryForCleanup) {
  store->prepare("a", "", {});
  store->remove("a");
  EXPECT_EQ(dirs(), (std::vector<std::string>{"1"}));
  EXPECT_EQ(store->cleanup(), 1u);
  EXPECT_TRUE(dirs().empty());
}

TEST_F(SnapshotStoreTest, ReopenReconcilesOrphansAndTempDirs) {
  store->prepare("keep", "", {});
  fs::create_directories(root / "snapshots/new-abc123/fs");
  fs::create_directories(root / "snapshots/77/fs");
  store.reset();
  store = std::make_unique<SnapshotStore>(root, OverlayOptions{});
  EXPECT_EQ(dirs(), (std::vector<std::string>{"1"}));
  EXPECT_EQ(names(), (std::vector<std::string>{"keep"}));
  // Ids are never reused, so a stale directory can never be mistaken for a new snapshot.
  store->prepare("next", "", {});
  EXPECT_EQ(dirs(), (std::vector<std::string>{"1", "2"}));
}

TEST_F(SnapshotStoreTest, ChildFsTakesOwnerOfParent) {
  store->prepare("a", "", {});
  ASSERT_EQ(chown((root / "snapshots/1/fs").c_str(), 1234, 5678), 0);
  store->commit("c", "a", {});
  store->prepare("b", "c", {});
  struct stat st {};
  ASSERT_EQ(stat((root / "snapshots/2/fs").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
}

TEST_F(SnapshotStoreTest, RebaseOnCommitOnlyForParentless) {
  store->prepare("base", "", {});
  store->commit("c0", "base", {});
  store->prepare("l1", "", {});
  store->commit("c1", "l1", {}, "c0");
  EXPECT_EQ(store->stat("c1").parent, "c0");
  store->prepare("l2", "c1", {});
  EXPECT_EQ(errorOf([&] { store->commit("c2", "l2", {}, "c0"); }), ErrorClass::InvalidArgument);
}

}  // namespace
}  // namespace snapimport::store
