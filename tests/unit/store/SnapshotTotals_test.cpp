// SnapshotStore::totals, the read-only counts behind the snapshot metrics.
#include <gtest/gtest.h>

#include <fstream>

#include "TempDir.h"
#include "store/SnapshotStore.h"

namespace snapimport::store {
namespace {

TEST(SnapshotTotals, CountsKindsAndSumsCommittedUsage) {
  testing::TempDir tmp;
  SnapshotStore store(tmp.path() / "root", OverlayOptions{});
  EXPECT_EQ(store.totals().committed, 0);

  auto mounts = store.prepare("a-active", "", {});
  ASSERT_FALSE(mounts.empty());
  std::ofstream(mounts[0].source + "/file") << std::string(10000, 'x');
  store.commit("a", "a-active", {});
  store.prepare("b-active", "a", {});
  store.view("v", "a", {});

  SnapshotStore::Totals t = store.totals();
  EXPECT_EQ(t.committed, 1);
  EXPECT_EQ(t.active, 1);
  EXPECT_EQ(t.views, 1);
  EXPECT_EQ(t.committedUsage.size, store.usage("a").size);
  EXPECT_GE(t.committedUsage.size, 10000);
  EXPECT_GE(t.committedUsage.inodes, 2);
}

}  // namespace
}  // namespace snapimport::store
