#pragma once
// A client for the Kubernetes CRI ImageService on containerd's socket. Pulling through CRI (not
// through containerd's own client API) puts images in namespace k8s.io where kubelet sees them, and
// makes containerd pass the layer annotations the importer needs. No generated type leaks out of
// this header.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace snapimport::plugin {

struct CriAuth {
  std::string username;
  std::string password;
};

struct CriImage {
  std::string id;  // config digest
  std::vector<std::string> repoTags;
  std::vector<std::string> repoDigests;
  uint64_t size = 0;
};

struct CriFilesystem {
  std::string mountpoint;
  uint64_t usedBytes = 0, inodesUsed = 0;
};

class CriImageClient {
 public:
  // endpoint: "unix:///run/containerd/containerd.sock" or a plain socket path.
  CriImageClient(const std::string& endpoint, std::chrono::seconds timeout);
  ~CriImageClient();

  // Returns the image id (config digest). Throws std::runtime_error naming the image and the
  // gRPC status on failure.
  std::string pull(const std::string& image, const std::optional<CriAuth>& auth);
  std::optional<CriImage> status(const std::string& image);
  std::vector<CriImage> list();
  void remove(const std::string& image);
  // ImageFsInfo's image filesystems (what kubelet's image GC reads).
  std::vector<CriFilesystem> imageFilesystems();

  // Normalises "unix:///x", "unix:/x" and "/x" to a gRPC target.
  static std::string grpcTarget(const std::string& endpoint);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace snapimport::plugin
