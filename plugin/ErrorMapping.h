#pragma once
// Maps store errors onto the gRPC codes containerd's errdefs understand (reference §2.1).
// Only the eight codes containerd 1.6 decodes are used where containerd must react.
//
// A full disk is RESOURCE_EXHAUSTED. containerd's own local stores return ENOSPC as a bare os
// error, which its gRPC server sends as UNKNOWN; we say more. containerd 2.x's proxy clients
// (errdefs/pkg/errgrpc) decode it as errdefs.ErrResourceExhausted; 1.6 and 1.7 decode it as
// ErrUnknown. Either way containerd keeps our message, which names the path and says "No space
// left on device", and nothing in containerd retries on it: the pull fails and reports it.
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
