#include "CriImageClient.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <stdexcept>

#include "cri/runtime/v1/images.grpc.pb.h"

namespace snapimport::plugin {

namespace {
// containerd's default gRPC message limit; ListImages on a busy node can be large.
constexpr int kMaxMessageBytes = 16 << 20;

CriImage fromProto(const runtime::v1::Image& in) {
  CriImage out;
  out.id = in.id();
  out.repoTags.assign(in.repo_tags().begin(), in.repo_tags().end());
  out.repoDigests.assign(in.repo_digests().begin(), in.repo_digests().end());
  out.size = in.size();
  return out;
}
}  // namespace

struct CriImageClient::Impl {
  std::string endpoint;
  std::chrono::seconds timeout;
  std::unique_ptr<runtime::v1::ImageService::Stub> stub;

  void setDeadline(grpc::ClientContext& ctx) const {
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  }
  [[noreturn]] void fail(const std::string& what, const grpc::Status& s) const {
    std::string code;
    switch (s.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        code = "unavailable (is containerd running and serving CRI on " + endpoint + "?)";
        break;
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        code = "timed out after " + std::to_string(timeout.count()) + "s";
        break;
      case grpc::StatusCode::UNIMPLEMENTED:
        code = "not implemented (is the CRI plugin disabled in containerd?)";
        break;
      default:
        code = "gRPC code " + std::to_string(static_cast<int>(s.error_code()));
    }
    throw std::runtime_error(what + ": " + code + ": " + s.error_message());
  }
};

std::string CriImageClient::grpcTarget(const std::string& endpoint) {
  if (endpoint.rfind("unix://", 0) == 0) return "unix:" + endpoint.substr(7);
  if (endpoint.rfind("unix:", 0) == 0) return endpoint;
  if (!endpoint.empty() && endpoint[0] == '/') return "unix:" + endpoint;
  throw std::runtime_error("image endpoint \"" + endpoint +
                           "\" is not a unix socket (want unix:///path/to/sock)");
}

CriImageClient::CriImageClient(const std::string& endpoint, std::chrono::seconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = endpoint;
  impl_->timeout = timeout;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  auto channel =
      grpc::CreateCustomChannel(grpcTarget(endpoint), grpc::InsecureChannelCredentials(), args);
  impl_->stub = runtime::v1::ImageService::NewStub(channel);
}

CriImageClient::~CriImageClient() = default;

std::string CriImageClient::pull(const std::string& image, const std::optional<CriAuth>& auth) {
  runtime::v1::PullImageRequest req;
  req.mutable_image()->set_image(image);
  if (auth) {
    req.mutable_auth()->set_username(auth->username);
    req.mutable_auth()->set_password(auth->password);
  }
  runtime::v1::PullImageResponse resp;
  grpc::ClientContext ctx;
  impl_->setDeadline(ctx);
  grpc::Status s = impl_->stub->PullImage(&ctx, req, &resp);
  if (!s.ok()) impl_->fail("pull " + image + " through CRI at " + impl_->endpoint, s);
  return resp.image_ref();
}

std::optional<CriImage> CriImageClient::status(const std::string& image) {
  runtime::v1::ImageStatusRequest req;
  req.mutable_image()->set_image(image);
  runtime::v1::ImageStatusResponse resp;
  grpc::ClientContext ctx;
  impl_->setDeadline(ctx);
  grpc::Status s = impl_->stub->ImageStatus(&ctx, req, &resp);
  if (!s.ok()) impl_->fail("image status of " + image + " through CRI at " + impl_->endpoint, s);
  if (!resp.has_image()) return std::nullopt;
  return fromProto(resp.image());
}

std::vector<CriImage> CriImageClient::list() {
  runtime::v1::ListImagesRequest req;
  runtime::v1::ListImagesResponse resp;
  grpc::ClientContext ctx;
  impl_->setDeadline(ctx);
  grpc::Status s = impl_->stub->ListImages(&ctx, req, &resp);
  if (!s.ok()) impl_->fail("list images through CRI at " + impl_->endpoint, s);
  std::vector<CriImage> out;
  for (const auto& i : resp.images()) out.push_back(fromProto(i));
  return out;
}

void CriImageClient::remove(const std::string& image) {
  runtime::v1::RemoveImageRequest req;
  req.mutable_image()->set_image(image);
  runtime::v1::RemoveImageResponse resp;
  grpc::ClientContext ctx;
  impl_->setDeadline(ctx);
  grpc::Status s = impl_->stub->RemoveImage(&ctx, req, &resp);
  if (!s.ok()) impl_->fail("remove " + image + " through CRI at " + impl_->endpoint, s);
}

std::vector<CriFilesystem> CriImageClient::imageFilesystems() {
  runtime::v1::ImageFsInfoRequest req;
  runtime::v1::ImageFsInfoResponse resp;
  grpc::ClientContext ctx;
  impl_->setDeadline(ctx);
  grpc::Status s = impl_->stub->ImageFsInfo(&ctx, req, &resp);
  if (!s.ok()) impl_->fail("image filesystem info through CRI at " + impl_->endpoint, s);
  std::vector<CriFilesystem> out;
  for (const auto& f : resp.image_filesystems()) {
    out.push_back({f.fs_id().mountpoint(), f.used_bytes().value(), f.inodes_used().value()});
  }
  return out;
}

}  // namespace snapimport::plugin
