#pragma once
// Counts every gRPC request and times it, by full method name and status code, into
// snapimport_grpc_requests_total and snapimport_grpc_request_duration_seconds. Done as a server
// interceptor so the services themselves stay free of metrics code.
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

namespace snapimport::plugin {

// For ServerBuilder::experimental().SetInterceptorCreators.
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
grpcMetricsInterceptors();

// "OK", "NOT_FOUND", ... as gRPC spells the codes.
const char* grpcCodeName(grpc::StatusCode code);

}  // namespace snapimport::plugin
