#include "DiffService.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "ErrorMapping.h"
#include "Importer.h"
#include "common/Log.h"
#include "common/Metrics.h"
#include "store/Digest.h"
#include "unpack/FileSource.h"

namespace snapimport::plugin {
namespace {

namespace fs = std::filesystem;
constexpr const char* kSource = "content";
// What containerd's own differ answers for an applied layer: the uncompressed tar.
constexpr const char* kAppliedMediaType = "application/vnd.oci.image.layer.v1.tar";

// The directory a layer would be written into, from the mounts containerd passes: the upper
// directory of an overlay mount, or the source of a read-write bind mount (a snapshot without
// parent). nullopt, with `why`, for anything else.
std::optional<fs::path> targetOf(
    const google::protobuf::RepeatedPtrField<containerd::types::Mount>& mounts, std::string& why) {
  if (mounts.size() != 1) {
    why = std::to_string(mounts.size()) + " mounts, not one";
    return std::nullopt;
  }
  const auto& m = mounts[0];
  if (m.type() == "bind") {
    for (const auto& o : m.options()) {
      if (o == "ro") {
        why = "a read-only bind mount of " + m.source();
        return std::nullopt;
      }
    }
    return fs::path(m.source());
  }
  if (m.type() == "overlay") {
    for (const auto& o : m.options()) {
      if (o.rfind("upperdir=", 0) == 0) return fs::path(o.substr(9));
    }
    why = "an overlay mount without upperdir (a view)";
    return std::nullopt;
  }
  why = "a mount of type \"" + m.type() + "\"";
  return std::nullopt;
}

// The blob file, read until the Apply's client goes away.
class ApplySource : public unpack::Source {
 public:
  ApplySource(const fs::path& path, grpc::ServerContext* ctx) : file_(path), ctx_(ctx) {}
  size_t read(void* buf, size_t len) override {
    if (ctx_ && ctx_->IsCancelled())
      throw unpack::Cancelled("the Apply was cancelled by its client");
    return file_.read(buf, len);
  }

 private:
  unpack::FileSource file_;
  grpc::ServerContext* ctx_;
};

}  // namespace

DiffService::DiffService(std::shared_ptr<store::SnapshotStore> snapshots,
                         std::shared_ptr<store::ContentStore> content,
                         std::shared_ptr<WriteImporter> writes)
    : snapshots_(std::move(snapshots)), content_(std::move(content)), writes_(std::move(writes)) {}

grpc::Status DiffService::Apply(grpc::ServerContext* ctx, const diffv1::ApplyRequest* req,
                                diffv1::ApplyResponse* resp) {
  const auto& desc = req->diff();
  auto declined = [&](const std::string& why) {
    metrics::Metrics::daemon().fallbacks("apply_declined", kSource).Increment();
    log::info("layer apply left to containerd's next differ",
              {{"layer", desc.digest()}, {"reason", why}});
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "snapimport does not apply layer " + desc.digest() + ": " + why);
  };
  auto cancelled = [ctx] { return ctx && ctx->IsCancelled(); };
  auto gone = [&] {
    return grpc::Status(grpc::StatusCode::CANCELLED,
                        "Apply of layer " + desc.digest() + " cancelled by its client");
  };
  return guarded([&]() -> grpc::Status {
    // Payloads are for containerd's stream processors. containerd 1.7's CRI sends the ocicrypt
    // decoders' on every Apply; they process only "+encrypted" media types, which are declined
    // below anyway. A payload for any other processor may apply to this layer: containerd's
    // differ runs it.
    std::string processors;
    for (const auto& [k, v] : req->payloads()) {
      if (k.rfind("io.containerd.ocicrypt.decoder.v1.", 0) != 0)
        processors += (processors.empty() ? "" : ", ") + k;
    }
    if (!processors.empty())
      return declined("it comes with payloads for stream processors (" + processors + ")");
    if (!unpack::isSupportedMediaType(desc.media_type()))
      return declined("media type \"" + desc.media_type() +
                      "\" is no layer type snapimport unpacks");
    std::optional<store::Digest> digest;
    try {
      digest = store::Digest::parse(desc.digest());
    } catch (const std::exception& x) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          std::string("Apply: the layer's digest is not valid: ") + x.what());
    }
    std::string why;
    auto target = targetOf(req->mounts(), why);
    if (!target) return declined("the mounts are " + why);
    auto active = snapshots_->activeByFsDir(*target);
    if (!active)
      return declined("the mounts' " + target->string() + " is no active snapshot of snapimport's");
    if (!content_->contains(*digest))
      return declined("the blob is not in snapimport's content store");
    if (writes_) writes_->keepDeclinedLayers();

    // The tree unpacked from containerd's write of this blob, else an unpack from the store.
    std::optional<WriteImporter::StagedLayer> staged;
    if (writes_)
      staged = writes_->take({digest->str(), ""}, writes_->options().layerTimeout, cancelled);
    if (cancelled()) {
      if (staged) removeQuietly(staged->dir);
      return gone();
    }
    const char* from = staged ? "write" : "store";
    if (writes_) writes_->applyStarted(digest->str(), !staged);
    // Everything from here on is reported to `snapimport status` when it ends, however it ends.
    auto place = [&]() -> grpc::Status {
      if (!staged) {
        fs::path dir = makeStagingDir(snapshots_->stagingDir(), "apply-");
        try {
          ApplySource src(content_->blobPath(*digest), ctx);
          unpack::Options opts;
          opts.userxattr = snapshots_->overlayOptions().userxattr;
          if (writes_) {
            opts.limits = writes_->options().limits;
            opts.directWriteMinBytes = writes_->options().directWriteMinBytes;
          }
          // The content store verified this blob's digest when it was committed.
          opts.hashCompressed = false;
          opts.sync = req->sync_fs();
          unpack::Result r = unpack::unpackLayer(src, desc.media_type(), dir / "fs", opts);
          staged = WriteImporter::StagedLayer{dir,
                                              digest->str(),
                                              r.diffId,
                                              r.implicitDirs,
                                              r.compressedBytes,
                                              r.uncompressedBytes,
                                              r.entries};
        } catch (const unpack::Cancelled&) {
          removeQuietly(dir);
          return gone();
        } catch (...) {
          removeQuietly(dir);
          metrics::Metrics::daemon().importsFailed("extract", kSource).Increment();
          throw;
        }
      } else if (req->sync_fs()) {
        unpack::syncFilesystem(staged->dir / "fs");
      }
      try {
        unpack::fixImplicitDirs(staged->dir / "fs", staged->implicitDirs, active->lowers);
        if (cancelled()) {
          removeQuietly(staged->dir);
          return gone();
        }
        // rename(2) replaces an empty directory: the tree appears whole, or not at all.
        if (::rename((staged->dir / "fs").c_str(), active->fs.c_str()) != 0) {
          const int err = errno;
          throw std::runtime_error("move the unpacked layer into snapshot " + active->info.name +
                                   " (" + active->fs.string() + "): " + std::strerror(err) +
                                   (err == ENOTEMPTY || err == EEXIST
                                        ? " (the snapshot is not empty: a layer is applied only "
                                          "to a fresh snapshot)"
                                        : ""));
        }
      } catch (...) {
        removeQuietly(staged->dir);
        throw;
      }
      removeQuietly(staged->dir);
      metrics::Metrics::daemon().importsCompletedFrom(kSource).Increment();
      log::info("applied layer", {{"layer", staged->blobDigest},
                                  {"diff_id", staged->diffId},
                                  {"snapshot", active->info.name},
                                  {"from", from},
                                  {"bytes", std::to_string(staged->uncompressedBytes)},
                                  {"entries", std::to_string(staged->entries)}});
      auto* applied = resp->mutable_applied();
      applied->set_media_type(kAppliedMediaType);
      applied->set_digest(staged->diffId);
      applied->set_size(static_cast<int64_t>(staged->uncompressedBytes));
      return grpc::Status::OK;
    };
    grpc::Status status;
    try {
      status = place();
    } catch (const std::exception& x) {
      if (writes_) writes_->applyFinished(digest->str(), 0, 0, x.what());
      throw;
    }
    if (writes_) {
      writes_->applyFinished(digest->str(), status.ok() ? staged->compressedBytes : 0,
                             status.ok() ? staged->uncompressedBytes : 0,
                             status.ok() ? std::string() : status.error_message());
    }
    if (status.ok()) metrics::Metrics::daemon().diffApplies(from).Increment();
    return status;
  });
}

grpc::Status DiffService::Diff(grpc::ServerContext*, const diffv1::DiffRequest*,
                               diffv1::DiffResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "snapimport makes no layers from mounts; containerd's next differ does");
}

}  // namespace snapimport::plugin
