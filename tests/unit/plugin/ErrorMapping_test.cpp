#include "plugin/ErrorMapping.h"

#include <gtest/gtest.h>

namespace snapimport::plugin {
namespace {

using store::ErrorClass;

TEST(ErrorMapping, UsesTheCodesContainerd16Understands) {
  EXPECT_EQ(toStatusCode(ErrorClass::InvalidArgument), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(toStatusCode(ErrorClass::NotFound), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(toStatusCode(ErrorClass::AlreadyExists), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(toStatusCode(ErrorClass::FailedPrecondition), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(toStatusCode(ErrorClass::Unavailable), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(toStatusCode(ErrorClass::OutOfRange), grpc::StatusCode::OUT_OF_RANGE);
}

TEST(ErrorMapping, AFullDiskIsResourceExhaustedWithItsMessage) {
  EXPECT_EQ(toStatusCode(ErrorClass::ResourceExhausted), grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::Status s = guarded([]() -> grpc::Status {
    store::fail(
        ErrorClass::ResourceExhausted,
        "write 4096 bytes to ingest \"r\" (/root/content/ingest/ab/data): write at offset 0 "
        "failed: No space left on device");
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("/root/content/ingest/ab/data"), std::string::npos);
  EXPECT_NE(s.error_message().find("No space left on device"), std::string::npos);
}

TEST(ErrorMapping, GuardedKeepsMessageAndNeverThrows) {
  grpc::Status s = guarded(
      []() -> grpc::Status { store::fail(ErrorClass::NotFound, "snapshot \"x\" does not exist"); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "snapshot \"x\" does not exist");
  grpc::Status t = guarded([]() -> grpc::Status { throw std::runtime_error("disk on fire"); });
  EXPECT_EQ(t.error_code(), grpc::StatusCode::INTERNAL);
}

}  // namespace
}  // namespace snapimport::plugin
