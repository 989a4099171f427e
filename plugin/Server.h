#pragma once
// The gRPC server on the unix socket: owns the stores and the services built on them.
#include <grpcpp/server.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "CriImageProxy.h"
#include "Importer.h"
#include "WriteImporter.h"

namespace snapimport::store {
class SnapshotStore;
class ContentStore;
}  // namespace snapimport::store

namespace snapimport::plugin {

struct ServerOptions {
  std::filesystem::path root;                     // daemon state root (0700)
  std::filesystem::path address;                  // unix socket path
  std::chrono::milliseconds shutdownGrace{5000};  // in-flight calls' time to finish on shutdown()
  // Where the importer fetches layers; null: no importer, a plain overlay snapshotter.
  std::shared_ptr<LayerFetcher> fetcher;
  ImporterOptions importer;
  // Layers unpacked from containerd's own content writes (maxConcurrent 0: off).
  WriteImportOptions writeImport;
  CriProxyOptions cri{};  // the CRI image-service proxy, on its own socket; off without an address
  // While layers unpack, the staging filesystem is synced this often (0: never in the
  // background; each layer's own syncfs before its commit stays). See StagingWriteback.
  std::chrono::milliseconds writebackInterval{0};
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  // Opens the stores, reconciles on-disk state, and starts listening. Throws with a message
  // naming the path that could not be used.
  void start();
  // Blocks until shutdown() has finished.
  void wait();
  // Graceful stop: in-flight calls get shutdownGrace, then are cancelled.
  void shutdown();
  // For read-only observers (metrics). Null before start().
  std::shared_ptr<store::SnapshotStore> snapshotStore() const { return snapshots_; }

 private:
  ServerOptions options_;
  std::shared_ptr<store::SnapshotStore> snapshots_;
  std::shared_ptr<store::ContentStore> content_;
  std::shared_ptr<Importer> importer_;
  std::shared_ptr<WriteImporter> writes_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CriImageProxy> criProxy_;
  std::unique_ptr<grpc::Server> criServer_;
};

}  // namespace snapimport::plugin
