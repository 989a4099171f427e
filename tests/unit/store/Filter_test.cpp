#include "store/Filter.h"

#include <gtest/gtest.h>

#include "store/SnapshotStore.h"
#include "store/StoreError.h"

namespace snapimport::store {
namespace {

SnapshotInfo sample() {
  SnapshotInfo i;
  i.name = "k8s.io/3/sha256:abc";
  i.parent = "k8s.io/2/sha256:def";
  i.kind = Kind::Committed;
  i.labels = {{"containerd.io/snapshot.ref", "sha256:abc"}, {"empty", ""}, {"a.b", "x y"}};
  return i;
}

TEST(Filter, NoFiltersMatchEverything) {
  EXPECT_TRUE(matchSnapshot(Filter::parseAll({}), sample()));
}

TEST(Filter, EqualityOnNameParentKind) {
  EXPECT_TRUE(matchSnapshot(Filter::parse("name==\"k8s.io/3/sha256:abc\""), sample()));
  EXPECT_TRUE(matchSnapshot(Filter::parse("kind==committed"), sample()));
  EXPECT_FALSE(matchSnapshot(Filter::parse("kind==active"), sample()));
  EXPECT_TRUE(matchSnapshot(Filter::parse("parent==\"k8s.io/2/sha256:def\""), sample()));
}

TEST(Filter, QuotedLabelKeyAsContainerdSendsIt) {
  auto f = Filter::parse(
      "labels.\"containerd.io/snapshot.ref\"==sha256:abc,parent==\"k8s.io/2/sha256:def\"");
  EXPECT_TRUE(matchSnapshot(f, sample()));
  auto g = Filter::parse("labels.\"containerd.io/snapshot.ref\"==sha256:abc,parent==\"other\"");
  EXPECT_FALSE(matchSnapshot(g, sample()));
}

TEST(Filter, UnquotedDottedLabelKeyIsJoined) {
  EXPECT_TRUE(matchSnapshot(Filter::parse("labels.a.b==\"x y\""), sample()));
}

TEST(Filter, PresenceIgnoresEmptyValues) {
  EXPECT_TRUE(matchSnapshot(Filter::parse("labels.a.b"), sample()));
  EXPECT_FALSE(matchSnapshot(Filter::parse("labels.empty"), sample()));
  EXPECT_FALSE(matchSnapshot(Filter::parse("labels.missing"), sample()));
}

TEST(Filter, NotEqualTreatsMissingAsEmpty) {
  EXPECT_TRUE(matchSnapshot(Filter::parse("labels.missing!=x"), sample()));
  EXPECT_FALSE(matchSnapshot(Filter::parse("kind!=committed"), sample()));
}

TEST(Filter, RegexMatch) {
  EXPECT_TRUE(matchSnapshot(Filter::parse("name~=sha256:a.c$"), sample()));
  EXPECT_TRUE(matchSnapshot(Filter::parse("name~=/^k8s\\.io\\//"), sample()));
  EXPECT_FALSE(matchSnapshot(Filter::parse("name~=^moby"), sample()));
}

TEST(Filter, SeparateFiltersAreOred) {
  EXPECT_TRUE(matchSnapshot(Filter::parseAll({"kind==active", "kind==committed"}), sample()));
  EXPECT_FALSE(matchSnapshot(Filter::parseAll({"kind==active", "kind==view"}), sample()));
}

TEST(Filter, CommaIsAnd) {
  EXPECT_FALSE(matchSnapshot(Filter::parse("kind==committed,name==nope"), sample()));
}

TEST(Filter, SyntaxErrorsAreInvalidArgument) {
  for (const char* bad : {"", "name==", "name=x", "==x", "name==\"unterminated", "labels.",
                          "name~=(", "name==a,", "name==a b"}) {
    try {
      Filter::parse(bad);
      ADD_FAILURE() << "accepted bad filter: " << bad;
    } catch (const StoreError& e) {
      EXPECT_EQ(e.errorClass(), ErrorClass::InvalidArgument) << bad;
      EXPECT_NE(std::string(e.what()).find("invalid filter"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace snapimport::store
