#pragma once
// containerd.services.snapshots.v1.Snapshots over store::SnapshotStore.
#include <memory>

#include "Importer.h"
#include "WriteImporter.h"
#include "containerd/services/snapshots/v1/snapshots.grpc.pb.h"
#include "store/SnapshotStore.h"

namespace snapimport::plugin {

namespace snapshotsv1 = ::containerd::services::snapshots::v1;

class SnapshotService final : public snapshotsv1::Snapshots::Service {
 public:
  // With an importer, Prepare runs the remote-snapshot flow for layers that carry CRI labels; with
  // `writes`, a Prepare naming its chain (containerd.io/snapshot.ref) first looks for that layer
  // among those staged from containerd's own content writes.
  explicit SnapshotService(std::shared_ptr<store::SnapshotStore> store,
                           std::shared_ptr<Importer> importer = nullptr,
                           std::shared_ptr<WriteImporter> writes = nullptr);

  grpc::Status Prepare(grpc::ServerContext*, const snapshotsv1::PrepareSnapshotRequest*,
                       snapshotsv1::PrepareSnapshotResponse*) override;
  grpc::Status View(grpc::ServerContext*, const snapshotsv1::ViewSnapshotRequest*,
                    snapshotsv1::ViewSnapshotResponse*) override;
  grpc::Status Mounts(grpc::ServerContext*, const snapshotsv1::MountsRequest*,
                      snapshotsv1::MountsResponse*) override;
  grpc::Status Commit(grpc::ServerContext*, const snapshotsv1::CommitSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Remove(grpc::ServerContext*, const snapshotsv1::RemoveSnapshotRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Stat(grpc::ServerContext*, const snapshotsv1::StatSnapshotRequest*,
                    snapshotsv1::StatSnapshotResponse*) override;
  grpc::Status Update(grpc::ServerContext*, const snapshotsv1::UpdateSnapshotRequest*,
                      snapshotsv1::UpdateSnapshotResponse*) override;
  grpc::Status List(grpc::ServerContext*, const snapshotsv1::ListSnapshotsRequest*,
                    grpc::ServerWriter<snapshotsv1::ListSnapshotsResponse>*) override;
  grpc::Status Usage(grpc::ServerContext*, const snapshotsv1::UsageRequest*,
                     snapshotsv1::UsageResponse*) override;
  grpc::Status Cleanup(grpc::ServerContext*, const snapshotsv1::CleanupRequest*,
                       google::protobuf::Empty*) override;

 private:
  std::shared_ptr<store::SnapshotStore> store_;
  std::shared_ptr<Importer> importer_;
  std::shared_ptr<WriteImporter> writes_;
};

// Conversions between the wire types and the store's (exposed for unit tests).
void toProto(const store::SnapshotInfo& in, snapshotsv1::Info* out);
store::SnapshotInfo fromProto(const snapshotsv1::Info& in);

}  // namespace snapimport::plugin
