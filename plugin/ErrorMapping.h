#pragma once
// Maps store errors onto the gRPC codes containerd's errdefs understand (reference §2.1).
// Only the eight codes containerd 1.6 decodes are used where containerd must react.
#include <grpcpp/support/status.h>

#include "store/StoreError.h"

namespace snapimport::plugin {

grpc::StatusCode toStatusCode(store::ErrorClass cls);
grpc::Status toStatus(const store::StoreError& err);

// Runs fn and turns any exception into a gRPC status, so no handler can take the daemon down.
template <typename Fn>
grpc::Status guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const store::StoreError& e) {
    return toStatus(e);
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
}

}  // namespace snapimport::plugin
