#include <gtest/gtest.h>

#include "unpack/EntryPath.h"
#include "unpack/MediaType.h"
#include "unpack/Unpacker.h"
#include "unpack/Whiteout.h"
#include "unpack/XattrPolicy.h"

namespace snapimport::unpack {
namespace {

TEST(EntryPath, CleansAsIfRootedAtSlash) {
  EXPECT_EQ(cleanEntryPath("a/b/c"), "a/b/c");
  EXPECT_EQ(cleanEntryPath("./a//b/./c/"), "a/b/c");
  EXPECT_EQ(cleanEntryPath("/etc/passwd"), "etc/passwd");
  EXPECT_EQ(cleanEntryPath("../../etc/passwd"), "etc/passwd");
  EXPECT_EQ(cleanEntryPath("a/../../b"), "b");
  EXPECT_EQ(cleanEntryPath("a/b/../c"), "a/c");
  EXPECT_EQ(cleanEntryPath("./"), "");
  EXPECT_EQ(cleanEntryPath(".."), "");
  EXPECT_EQ(cleanEntryPath("...").size(), 3u) << "three dots is a name";
  EXPECT_THROW(cleanEntryPath(std::string(256, 'n')), UnpackError);
}

TEST(EntryPath, SplitsParentAndLeaf) {
  EXPECT_EQ(splitParent("a/b/c").first, "a/b");
  EXPECT_EQ(splitParent("a/b/c").second, "c");
  EXPECT_EQ(splitParent("c").first, "");
  EXPECT_EQ(splitParent("c").second, "c");
}

TEST(Whiteout, ClassifiesAndValidates) {
  EXPECT_EQ(Whiteout::classify("file").kind, Whiteout::Kind::None);
  EXPECT_EQ(Whiteout::classify(".whatever").kind, Whiteout::Kind::None);
  EXPECT_EQ(Whiteout::classify(".wh..wh..opq").kind, Whiteout::Kind::Opaque);
  EXPECT_EQ(Whiteout::classify(".wh..wh.plnk").kind, Whiteout::Kind::Meta);
  auto w = Whiteout::classify(".wh.passwd");
  EXPECT_EQ(w.kind, Whiteout::Kind::Remove);
  EXPECT_EQ(w.target, "passwd");
  EXPECT_THROW(Whiteout::classify(".wh."), UnpackError);
  EXPECT_THROW(Whiteout::classify(".wh.."), UnpackError);
  EXPECT_THROW(Whiteout::classify(".wh..."), UnpackError);
}

TEST(MediaType, KnowsEveryLayerTypeAndRefusesTheRest) {
  EXPECT_EQ(layerCompression("application/vnd.oci.image.layer.v1.tar"), Compression::None);
  EXPECT_EQ(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip"), Compression::Gzip);
  EXPECT_EQ(layerCompression("application/vnd.oci.image.layer.v1.tar+zstd"), Compression::Zstd);
  EXPECT_EQ(layerCompression("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Compression::Gzip);
  EXPECT_EQ(layerCompression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            Compression::Gzip);
  EXPECT_EQ(layerCompression("application/vnd.oci.image.layer.nondistributable.v1.tar"),
            Compression::None);
  EXPECT_EQ(layerCompression("application/vnd.oci.image.layer.v1.tar+gzip; charset=x"),
            Compression::Gzip);
  EXPECT_FALSE(layerCompression("application/vnd.oci.image.layer.v1.tar+bzip2"));
  EXPECT_FALSE(layerCompression("application/vnd.oci.empty.v1+json"));
  EXPECT_FALSE(layerCompression(""));
  EXPECT_EQ(compressionByName("gzip"), Compression::Gzip);
}

TEST(XattrPolicy, AllowsUserCapsAndAclsOnly) {
  EXPECT_TRUE(isCopyableXattr("user.mime_type"));
  EXPECT_TRUE(isCopyableXattr("security.capability"));
  EXPECT_TRUE(isCopyableXattr("system.posix_acl_access"));
  EXPECT_FALSE(isCopyableXattr("user.overlay.opaque"));
  EXPECT_FALSE(isCopyableXattr("trusted.overlay.redirect"));
  EXPECT_FALSE(isCopyableXattr("trusted.anything"));
  EXPECT_FALSE(isCopyableXattr("security.selinux"));
}

}  // namespace
}  // namespace snapimport::unpack
