#include "Server.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "ContentService.h"
#include "DiffService.h"
#include "GrpcMetrics.h"
#include "SnapshotService.h"
#include "common/Log.h"
#include "store/ContentStore.h"
#include "store/Digest.h"
#include "store/SnapshotStore.h"

namespace snapimport::plugin {
namespace fs = std::filesystem;

namespace {

// containerd's default gRPC message limit on both sides.
constexpr int kMaxMessageBytes = 16 << 20;

[[noreturn]] void startFail(const std::string& what) { throw std::runtime_error(what); }

// Creates missing parents of the socket with 0700, leaving existing directories alone.
void makeSocketParents(const fs::path& dir) {
  if (dir.empty() || fs::exists(dir)) return;
  makeSocketParents(dir.parent_path());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    startFail("create socket directory " + dir.string() + ": " + std::strerror(errno));
  }
  chmod(dir.c_str(), 0700);
}

bool someoneListens(const fs::path& sock) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

void prepareSocketPath(const fs::path& sock) {
  if (sock.string().size() >= sizeof(sockaddr_un::sun_path)) {
    startFail("socket path " + sock.string() + " is longer than the " +
              std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes a unix socket allows");
  }
  makeSocketParents(sock.parent_path());
  struct stat st {};
  if (lstat(sock.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode))
    startFail("socket path " + sock.string() + " exists and is not a socket");
  if (someoneListens(sock)) startFail("another process is already serving on " + sock.string());
  if (unlink(sock.c_str()) != 0)
    startFail("remove stale socket " + sock.string() + ": " + std::strerror(errno));
}

}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}
Server::~Server() = default;

namespace {

// Serves `services` on unix socket `sock`, mode 0660 from the start.
std::unique_ptr<grpc::Server> listenUnix(const fs::path& sock,
                                         const std::vector<grpc::Service*>& services) {
  prepareSocketPath(sock);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + sock.string(), grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  for (auto* s : services) builder.RegisterService(s);
  builder.experimental().SetInterceptorCreators(grpcMetricsInterceptors());  // request metrics
  // The socket must never be world-accessible, not even between bind and chmod.
  mode_t old = umask(0117);
  auto server = builder.BuildAndStart();
  umask(old);
  if (!server) startFail("cannot listen on unix socket " + sock.string());
  if (chmod(sock.c_str(), 0660) != 0) {
    startFail("chmod socket " + sock.string() + ": " + std::strerror(errno));
  }
  return server;
}

// A committed blob of the content store, when it is there, no larger than maxBytes, and still
// hashes to its name.
std::optional<std::string> readLocalBlob(store::ContentStore& content, const std::string& digest,
                                         size_t maxBytes) {
  try {
    store::Digest d = store::Digest::parse(digest);
    if (!content.contains(d)) return std::nullopt;
    const fs::path path = content.blobPath(d);
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec || size > maxBytes) return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::string bytes(static_cast<size_t>(size), '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (static_cast<uint64_t>(in.gcount()) != size) return std::nullopt;
    if (store::Digest::of(bytes) != d) {
      log::warn("content store blob does not match its digest; fetching it from the registry",
                {{"digest", digest}});
      return std::nullopt;
    }
    return bytes;
  } catch (const std::exception& e) {
    log::debug("content store blob not usable", {{"digest", digest}, {"error", e.what()}});
    return std::nullopt;
  }
}

}  // namespace

void Server::start() {
  snapshots_ = std::make_shared<store::SnapshotStore>(options_.root);
  // Only when something unpacks into staging: the importer, or imports from containerd's writes.
  if (options_.writebackInterval.count() > 0 &&
      (options_.fetcher || options_.writeImport.maxConcurrent > 0)) {
    auto writeback =
        std::make_shared<StagingWriteback>(snapshots_->stagingDir(), options_.writebackInterval);
    options_.importer.writeback = writeback;
    options_.writeImport.writeback = writeback;
  }
  if (options_.fetcher)
    importer_ = std::make_shared<Importer>(snapshots_, options_.fetcher, options_.importer);
  content_ = std::make_shared<store::ContentStore>(options_.root);  // issue 3
  if (options_.fetcher) {
    std::weak_ptr<store::ContentStore> weak = content_;
    options_.fetcher->useLocalBlobs(
        [weak](const std::string& digest, size_t maxBytes) -> std::optional<std::string> {
          auto content = weak.lock();
          if (!content) return std::nullopt;
          return readLocalBlob(*content, digest, maxBytes);
        });
  }
  if (options_.writeImport.maxConcurrent > 0) {
    writes_ = std::make_shared<WriteImporter>(snapshots_, content_, options_.writeImport);
  }
  services_.push_back(std::make_unique<SnapshotService>(snapshots_, importer_, writes_));
  services_.push_back(std::make_unique<ContentService>(content_, writes_));
  // Used only when containerd's config names it (a proxy plugin of type "diff", 1.7.4+ and 2.x).
  services_.push_back(std::make_unique<DiffService>(snapshots_, content_, writes_));

  std::vector<grpc::Service*> services;
  for (auto& s : services_) services.push_back(s.get());
  server_ = listenUnix(options_.address, services);
  log::info("serving", {{"address", options_.address.string()},
                        {"root", options_.root.string()},
                        {"index_off", snapshots_->overlayOptions().indexOff ? "true" : "false"},
                        {"userxattr", snapshots_->overlayOptions().userxattr ? "true" : "false"}});
  if (!options_.cri.address.empty()) {
    criProxy_ = std::make_unique<CriImageProxy>(options_.cri);
    criServer_ = listenUnix(options_.cri.address, {criProxy_->service()});
    log::info("serving the CRI image service",
              {{"address", options_.cri.address.string()},
               {"containerd_address", options_.cri.containerdAddress}});
  }
}

void Server::wait() {
  if (server_) server_->Wait();
}

void Server::shutdown() {
  auto deadline = std::chrono::system_clock::now() + options_.shutdownGrace;
  std::error_code ec;
  if (criServer_) {
    criServer_->Shutdown(deadline);
    fs::remove(options_.cri.address, ec);
  }
  if (!server_) return;
  server_->Shutdown(deadline);
  fs::remove(options_.address, ec);
}

}  // namespace snapimport::plugin
