#include "ErrorMapping.h"

namespace snapimport::plugin {

grpc::StatusCode toStatusCode(store::ErrorClass cls) {
  using store::ErrorClass;
  switch (cls) {
    case ErrorClass::InvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case ErrorClass::NotFound:
      return grpc::StatusCode::NOT_FOUND;
    case ErrorClass::AlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case ErrorClass::FailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorClass::Unavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case ErrorClass::OutOfRange:
      return grpc::StatusCode::OUT_OF_RANGE;
    case ErrorClass::DataLoss:
      return grpc::StatusCode::DATA_LOSS;
    case ErrorClass::ResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ErrorClass::Internal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::UNKNOWN;
}

grpc::Status toStatus(const store::StoreError& err) {
  return grpc::Status(toStatusCode(err.errorClass()), err.what());
}

}  // namespace snapimport::plugin
