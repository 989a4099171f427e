#include "CriImageProxy.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <stdexcept>

#include "CriImageClient.h"
#include "common/Log.h"
#include "cri/runtime/v1/images.grpc.pb.h"
#include "registry/Error.h"

namespace snapimport::plugin {
namespace {

namespace v1 = runtime::v1;

// kubelet's own limit for CRI messages; ListImages on a busy node is the large one.
constexpr int kMaxMessageBytes = 16 << 20;

CriAuthConfig authOf(const v1::AuthConfig& a) {
  return {a.username(),       a.password(),       a.auth(),
          a.server_address(), a.identity_token(), a.registry_token()};
}

std::string codeName(const grpc::Status& s) {
  return s.ok() ? "OK" : "code " + std::to_string(static_cast<int>(s.error_code()));
}

class Forwarder final : public v1::ImageService::Service {
 public:
  Forwarder(std::shared_ptr<v1::ImageService::Stub> stub, std::shared_ptr<PullCredentials> creds,
            std::string upstream)
      : stub_(std::move(stub)), creds_(std::move(creds)), upstream_(std::move(upstream)) {}

  grpc::Status ListImages(grpc::ServerContext* ctx, const v1::ListImagesRequest* req,
                          v1::ListImagesResponse* resp) override {
    return forward(&v1::ImageService::Stub::ListImages, ctx, req, resp);
  }
  grpc::Status ImageStatus(grpc::ServerContext* ctx, const v1::ImageStatusRequest* req,
                           v1::ImageStatusResponse* resp) override {
    return forward(&v1::ImageService::Stub::ImageStatus, ctx, req, resp);
  }
  grpc::Status RemoveImage(grpc::ServerContext* ctx, const v1::RemoveImageRequest* req,
                           v1::RemoveImageResponse* resp) override {
    return forward(&v1::ImageService::Stub::RemoveImage, ctx, req, resp);
  }
  grpc::Status ImageFsInfo(grpc::ServerContext* ctx, const v1::ImageFsInfoRequest* req,
                           v1::ImageFsInfoResponse* resp) override {
    return forward(&v1::ImageService::Stub::ImageFsInfo, ctx, req, resp);
  }

  grpc::Status PullImage(grpc::ServerContext* ctx, const v1::PullImageRequest* req,
                         v1::PullImageResponse* resp) override {
    const std::string& image = req->image().image();
    auto started = std::chrono::steady_clock::now();
    std::optional<uint64_t> ticket;
    std::string credential = "none";
    if (creds_ && req->has_auth()) {
      // Anything wrong with the auth is containerd's to reject, with its own message: the
      // proxy then simply holds no credential for the pull.
      try {
        if (auto cred = credentialFromAuthConfig(authOf(req->auth()))) {
          ticket = creds_->begin(image, std::move(*cred));
          credential = "cri";
        }
      } catch (const std::exception& e) {  // a malformed AuthConfig or image reference
        credential = "unusable";
        log::warn("CRI pull credential not usable by the importer",
                  {{"image", image}, {"reason", e.what()}});
      }
    }
    grpc::Status s = forward(&v1::ImageService::Stub::PullImage, ctx, req, resp);
    if (ticket) creds_->end(*ticket);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    log::info("CRI pull forwarded", {{"image", image},
                                     {"credential", credential},
                                     {"result", codeName(s)},
                                     {"duration", std::to_string(ms.count()) + "ms"}});
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      log::warn("containerd's CRI socket does not answer",
                {{"address", upstream_}, {"error", s.error_message()}});
    }
    return s;
  }

 private:
  // One call to containerd with the caller's deadline and cancellation, its answer unchanged.
  template <typename Request, typename Response>
  grpc::Status forward(grpc::Status (v1::ImageService::Stub::*call)(grpc::ClientContext*,
                                                                    const Request&, Response*),
                       grpc::ServerContext* ctx, const Request* req, Response* resp) {
    auto c = grpc::ClientContext::FromServerContext(*ctx);
    return (stub_.get()->*call)(c.get(), *req, resp);
  }

  std::shared_ptr<v1::ImageService::Stub> stub_;
  std::shared_ptr<PullCredentials> creds_;
  std::string upstream_;
};

}  // namespace

struct CriImageProxy::Impl {
  std::unique_ptr<Forwarder> service;
};

CriImageProxy::CriImageProxy(CriProxyOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.containerdAddress.empty()) {
    throw std::invalid_argument("the CRI image-service proxy needs containerd's CRI address");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  auto channel = grpc::CreateCustomChannel(CriImageClient::grpcTarget(options.containerdAddress),
                                           grpc::InsecureChannelCredentials(), args);
  impl_->service = std::make_unique<Forwarder>(
      std::shared_ptr<v1::ImageService::Stub>(v1::ImageService::NewStub(channel)),
      options.credentials, options.containerdAddress);
}

CriImageProxy::~CriImageProxy() = default;

grpc::Service* CriImageProxy::service() { return impl_->service.get(); }

}  // namespace snapimport::plugin
