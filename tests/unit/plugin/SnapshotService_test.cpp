#include "plugin/SnapshotService.h"

#include <gtest/gtest.h>

namespace snapimport::plugin {
namespace {

TEST(SnapshotServiceConvert, InfoRoundTripAlwaysCarriesTimestamps) {
  // Built whole: GCC 12 at -O3 reports a false -Wrestrict for `in.parent = "p"`.
  store::SnapshotInfo in{
      "n", "p", store::Kind::View, 1700000000123456789, 1700000001000000001, {{"a", "b"}}};
  snapshotsv1::Info wire;
  toProto(in, &wire);
  EXPECT_TRUE(wire.has_created_at());
  EXPECT_TRUE(wire.has_updated_at());
  EXPECT_EQ(wire.kind(), snapshotsv1::VIEW);
  EXPECT_EQ(wire.created_at().seconds(), 1700000000);
  EXPECT_EQ(wire.created_at().nanos(), 123456789);
  store::SnapshotInfo back = fromProto(wire);
  EXPECT_EQ(back.name, in.name);
  EXPECT_EQ(back.parent, in.parent);
  EXPECT_EQ(back.kind, in.kind);
  EXPECT_EQ(back.created, in.created);
  EXPECT_EQ(back.labels, in.labels);
}

TEST(SnapshotServiceConvert, UnknownKindReadsAsCommittedLikeContainerd) {
  snapshotsv1::Info wire;
  wire.set_kind(snapshotsv1::UNKNOWN);
  EXPECT_EQ(fromProto(wire).kind, store::Kind::Committed);
}

}  // namespace
}  // namespace snapimport::plugin
