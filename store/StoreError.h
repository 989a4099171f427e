#pragma once
// Domain errors raised by the store. They name a class containerd understands (errdefs) so the
// plugin layer can map them to gRPC codes without the store knowing anything about gRPC.
#include <stdexcept>
#include <string>

namespace snapimport::store {

enum class ErrorClass {
  InvalidArgument,
  NotFound,
  AlreadyExists,
  FailedPrecondition,
  Unavailable,
  OutOfRange,
  DataLoss,
  // The disk (or a quota) is full: ENOSPC, EDQUOT, SQLITE_FULL. Not a bug, and not the client's
  // fault; the same request can succeed once space is freed (see NoSpace.h).
  ResourceExhausted,
  Internal,
};

class StoreError : public std::runtime_error {
 public:
  StoreError(ErrorClass cls, const std::string& message) : std::runtime_error(message), cls_(cls) {}
  ErrorClass errorClass() const noexcept { return cls_; }

 private:
  ErrorClass cls_;
};

[[noreturn]] inline void fail(ErrorClass cls, const std::string& message) {
  throw StoreError(cls, message);
}

}  // namespace snapimport::store
