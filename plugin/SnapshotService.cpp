#include "SnapshotService.h"

#include <malloc.h>

#include "ErrorMapping.h"
#include "common/Log.h"

namespace snapimport::plugin {
namespace {

// containerd's snapshot service sends List results in batches of this many Infos.
constexpr int kListBatch = 100;

template <typename Map>
store::Labels toLabels(const Map& m) {
  return store::Labels(m.begin(), m.end());
}

template <typename Response>
void addMounts(const std::vector<store::Mount>& mounts, Response* resp) {
  for (const auto& m : mounts) {
    auto* pm = resp->add_mounts();
    pm->set_type(m.type);
    pm->set_source(m.source);
    for (const auto& o : m.options) pm->add_options(o);
  }
}

void setTime(store::TimeNs ns, google::protobuf::Timestamp* ts) {
  ts->set_seconds(ns / 1000000000);
  ts->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

store::TimeNs fromTime(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000000 + ts.nanos();
}

}  // namespace

void toProto(const store::SnapshotInfo& in, snapshotsv1::Info* out) {
  out->set_name(in.name);
  out->set_parent(in.parent);
  switch (in.kind) {
    case store::Kind::View:
      out->set_kind(snapshotsv1::VIEW);
      break;
    case store::Kind::Active:
      out->set_kind(snapshotsv1::ACTIVE);
      break;
    case store::Kind::Committed:
      out->set_kind(snapshotsv1::COMMITTED);
      break;
  }
  // Always sent: containerd 1.7+ reads a missing timestamp as the Unix epoch.
  setTime(in.created, out->mutable_created_at());
  setTime(in.updated, out->mutable_updated_at());
  out->mutable_labels()->insert(in.labels.begin(), in.labels.end());
}

store::SnapshotInfo fromProto(const snapshotsv1::Info& in) {
  store::SnapshotInfo info;
  info.name = in.name();
  info.parent = in.parent();
  switch (in.kind()) {
    case snapshotsv1::VIEW:
      info.kind = store::Kind::View;
      break;
    case snapshotsv1::ACTIVE:
      info.kind = store::Kind::Active;
      break;
    default:
      info.kind = store::Kind::Committed;
      break;  // containerd reads unknown kinds as committed
  }
  info.created = fromTime(in.created_at());
  info.updated = fromTime(in.updated_at());
  info.labels = toLabels(in.labels());
  return info;
}

SnapshotService::SnapshotService(std::shared_ptr<store::SnapshotStore> store,
                                 std::shared_ptr<Importer> importer,
                                 std::shared_ptr<WriteImporter> writes)
    : store_(std::move(store)), importer_(std::move(importer)), writes_(std::move(writes)) {}

grpc::Status SnapshotService::Prepare(grpc::ServerContext* ctx,
                                      const snapshotsv1::PrepareSnapshotRequest* req,
                                      snapshotsv1::PrepareSnapshotResponse* resp) {
  return guarded([&] {
    store::Labels labels = toLabels(req->labels());
    auto cancelled = [ctx] { return ctx && ctx->IsCancelled(); };
    // containerd's metadata store makes its record of a Prepare in the transaction that calls
    // the proxy, and rolls it back when the call fails; a client that went away (the pull was
    // cancelled) has failed it. A snapshot made for it after that is known to nobody and stays
    // until containerd's next GC, so a Prepare that waited for a layer checks for its client
    // before it creates anything, and takes back what it made if the client left meanwhile.
    auto gone = [&] {
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          "Prepare of snapshot " + req->key() + " cancelled by its client");
    };
    // AlreadyExists is only ever answered to a Prepare that names its target chain: containerd
    // turns it into an error otherwise (reference §2.3).
    // A layer containerd is already writing (or has written) is taken from that write before the
    // importer would fetch it from the registry a second time.
    if (writes_ && labels.count(kLabelSnapshotRef)) {
      switch (writes_->prepare(req->key(), req->parent(), labels, cancelled)) {
        case WriteImporter::Outcome::Imported:
          return grpc::Status(
              grpc::StatusCode::ALREADY_EXISTS,
              "snapshot " + labels[kLabelSnapshotRef] +
                  " already exists (imported by snapimport from containerd's write)");
        case WriteImporter::Outcome::Cancelled:
          return gone();
        case WriteImporter::Outcome::Fallback:
          break;
      }
    }
    if (importer_ && labels.count(kLabelSnapshotRef) &&
        importer_->prepare(req->key(), req->parent(), labels) == Importer::Outcome::Imported) {
      return grpc::Status(
          grpc::StatusCode::ALREADY_EXISTS,
          "snapshot " + labels[kLabelSnapshotRef] + " already exists (imported by snapimport)");
    }
    if (cancelled()) return gone();
    auto mounts = store_->prepare(req->key(), req->parent(), labels);
    if (cancelled()) {
      try {
        store_->remove(req->key());
      } catch (const std::exception& x) {
        log::warn("could not remove the snapshot of a cancelled Prepare",
                  {{"key", req->key()}, {"error", x.what()}});
      }
      return gone();
    }
    addMounts(mounts, resp);
    log::debug("prepared snapshot", {{"key", req->key()}, {"parent", req->parent()}});
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::View(grpc::ServerContext*,
                                   const snapshotsv1::ViewSnapshotRequest* req,
                                   snapshotsv1::ViewSnapshotResponse* resp) {
  return guarded([&] {
    addMounts(store_->view(req->key(), req->parent(), toLabels(req->labels())), resp);
    log::debug("created view", {{"key", req->key()}, {"parent", req->parent()}});
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::Mounts(grpc::ServerContext*, const snapshotsv1::MountsRequest* req,
                                     snapshotsv1::MountsResponse* resp) {
  return guarded([&] {
    addMounts(store_->mounts(req->key()), resp);
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::Commit(grpc::ServerContext*,
                                     const snapshotsv1::CommitSnapshotRequest* req,
                                     google::protobuf::Empty*) {
  return guarded([&] {
    store_->commit(req->name(), req->key(), toLabels(req->labels()), req->parent());
    log::debug("committed snapshot", {{"key", req->key()}, {"name", req->name()}});
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::Remove(grpc::ServerContext*,
                                     const snapshotsv1::RemoveSnapshotRequest* req,
                                     google::protobuf::Empty*) {
  return guarded([&] {
    store_->remove(req->key());
    log::debug("removed snapshot", {{"key", req->key()}});
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::Stat(grpc::ServerContext*,
                                   const snapshotsv1::StatSnapshotRequest* req,
                                   snapshotsv1::StatSnapshotResponse* resp) {
  return guarded([&] {
    toProto(store_->stat(req->key()), resp->mutable_info());
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::Update(grpc::ServerContext*,
                                     const snapshotsv1::UpdateSnapshotRequest* req,
                                     snapshotsv1::UpdateSnapshotResponse* resp) {
  return guarded([&] {
    std::vector<std::string> paths(req->update_mask().paths().begin(),
                                   req->update_mask().paths().end());
    toProto(store_->update(fromProto(req->info()), paths), resp->mutable_info());
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::List(grpc::ServerContext* ctx,
                                   const snapshotsv1::ListSnapshotsRequest* req,
                                   grpc::ServerWriter<snapshotsv1::ListSnapshotsResponse>* writer) {
  return guarded([&] {
    std::vector<std::string> filters(req->filters().begin(), req->filters().end());
    store::Filter filter = store::Filter::parseAll(filters);
    snapshotsv1::ListSnapshotsResponse batch;
    bool broken = false;
    store_->list(filter, [&](const store::SnapshotInfo& info) {
      if (broken) return;
      toProto(info, batch.add_info());
      if (batch.info_size() >= kListBatch) {
        broken = !writer->Write(batch);
        batch.clear_info();
      }
    });
    if (!broken && batch.info_size() > 0) broken = !writer->Write(batch);
    if (broken || ctx->IsCancelled())
      return grpc::Status(grpc::StatusCode::CANCELLED, "list cancelled by client");
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::Usage(grpc::ServerContext*, const snapshotsv1::UsageRequest* req,
                                    snapshotsv1::UsageResponse* resp) {
  return guarded([&] {
    store::Usage u = store_->usage(req->key());
    resp->set_size(u.size);
    resp->set_inodes(u.inodes);
    return grpc::Status::OK;
  });
}

grpc::Status SnapshotService::Cleanup(grpc::ServerContext*, const snapshotsv1::CleanupRequest*,
                                      google::protobuf::Empty*) {
  return guarded([&] {
    size_t n = store_->cleanup();
    if (importer_) n += importer_->cleanupStaged();
    if (writes_) n += writes_->cleanupStaged();
    if (n) log::info("cleanup removed orphan snapshot directories", {{"count", std::to_string(n)}});
    // containerd calls Cleanup after a garbage collection, i.e. after pulls and removals have
    // settled. Imports run on many threads, and glibc keeps the memory they freed in per-thread
    // arenas; give it back to the node now rather than holding a pull's peak for ever.
    malloc_trim(0);
    return grpc::Status::OK;
  });
}

}  // namespace snapimport::plugin
