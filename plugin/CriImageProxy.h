#pragma once
// The CRI image-service proxy: serves runtime.v1.ImageService on its own unix socket (config
// [cri] image_service_address) and forwards every call to containerd's CRI socket ([cri]
// containerd_address), answering with containerd's response or status unchanged. kubelet points
// imageServiceEndpoint at it.
//
// Why: kubelet hands a private image's credentials (imagePullSecrets, or what a credential
// provider returned) to containerd inside PullImage.auth, and containerd never passes them on to
// a snapshotter. The proxy takes them off the request before forwarding it, and registers them
// in PullCredentials for that pull alone, so the importer has them when containerd's first
// Prepare for the image arrives.
//
// Deadlines and cancellation follow the caller: a kubelet that gives up cancels the call to
// containerd too. No generated type leaks out of this header.
#include <grpcpp/server.h>

#include <filesystem>
#include <memory>
#include <string>

#include "PullCredentials.h"

namespace snapimport::plugin {

struct CriProxyOptions {
  std::filesystem::path address;  // our socket; empty: the proxy is off
  std::string
      containerdAddress;  // containerd's CRI socket ("unix:///run/containerd/containerd.sock")
  std::shared_ptr<PullCredentials> credentials;  // where PullImage credentials go; may be null
};

class CriImageProxy {
 public:
  explicit CriImageProxy(CriProxyOptions options);
  ~CriImageProxy();
  CriImageProxy(const CriImageProxy&) = delete;
  CriImageProxy& operator=(const CriImageProxy&) = delete;

  // The gRPC service to register on a server listening on options.address.
  grpc::Service* service();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace snapimport::plugin
