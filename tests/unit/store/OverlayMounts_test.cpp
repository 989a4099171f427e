#include "store/OverlayMounts.h"

#include <gtest/gtest.h>

namespace snapimport::store {
namespace {

using Options = std::vector<std::string>;

TEST(OverlayMounts, ActiveWithoutParentIsReadWriteBind) {
  auto m = buildMounts(Kind::Active, "/r/snapshots/1", {}, {});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].source, "/r/snapshots/1/fs");
  EXPECT_EQ(m[0].options, (Options{"rw", "rbind"}));
}

TEST(OverlayMounts, ViewWithoutParentIsReadOnlyBind) {
  auto m = buildMounts(Kind::View, "/r/snapshots/1", {}, {});
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].options, (Options{"ro", "rbind"}));
}

TEST(OverlayMounts, ViewOfOneParentBindsTheParentReadOnly) {
  auto m = buildMounts(Kind::View, "/r/snapshots/5", {"/r/snapshots/2/fs"}, {true, false});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].source, "/r/snapshots/2/fs");
  EXPECT_EQ(m[0].options, (Options{"ro", "rbind"}));
}

TEST(OverlayMounts, ActiveWithParentsIsOverlayNearestFirst) {
  auto m =
      buildMounts(Kind::Active, "/r/snapshots/9", {"/r/snapshots/3/fs", "/r/snapshots/1/fs"}, {});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "overlay");
  EXPECT_EQ(m[0].source, "overlay");
  EXPECT_EQ(m[0].options, (Options{"workdir=/r/snapshots/9/work", "upperdir=/r/snapshots/9/fs",
                                   "lowerdir=/r/snapshots/3/fs:/r/snapshots/1/fs"}));
}

TEST(OverlayMounts, IndexOffAndUserxattrComeFirstAsIn16) {
  auto m = buildMounts(Kind::Active, "/r/snapshots/9", {"/r/snapshots/3/fs"}, {true, true});
  EXPECT_EQ(m[0].options, (Options{"index=off", "userxattr", "workdir=/r/snapshots/9/work",
                                   "upperdir=/r/snapshots/9/fs", "lowerdir=/r/snapshots/3/fs"}));
}

TEST(OverlayMounts, ViewOfManyParentsIsReadOnlyOverlay) {
  auto m = buildMounts(Kind::View, "/r/snapshots/9", {"/a/fs", "/b/fs"}, {true, false});
  EXPECT_EQ(m[0].type, "overlay");
  EXPECT_EQ(m[0].options, (Options{"index=off", "lowerdir=/a/fs:/b/fs"}));
}

TEST(OverlayMounts, NotInUserNamespaceHere) {
  // Tests run as real root in the initial namespace; userxattr must then stay off.
  if (runningInUserNamespace()) GTEST_SKIP() << "running inside a user namespace";
  EXPECT_FALSE(detectOverlayOptions("/tmp").userxattr);
}

}  // namespace
}  // namespace snapimport::store
