#pragma once
// containerd.services.diff.v1.Diff on snapimport's socket, for a proxy plugin of type "diff"
// (containerd 1.7.4+ and 2.x). containerd applies a layer by calling Apply with the mounts of
// an active snapshot; its diff service tries the differs of its `default` list in order and moves
// on at NotImplemented (2.x's transfer service calls the one differ of its unpack_config).
//
// Apply does the work itself when the mounts are those of one of snapimport's own active
// snapshots and the blob is in its own content store, which is every layer containerd unpacks
// into snapimport: it takes the tree already unpacked from containerd's write of the blob
// (WriteImporter), or unpacks the blob from the content store into staging/, and renames the
// finished fs/ over the snapshot's empty one. No mount, no blob crossing the socket, no second
// pass over a tree. The answer is the uncompressed digest and size the unpack computed, which
// containerd checks against the image config's diff_id before it commits the snapshot.
// Anything else answers NotImplemented, so containerd's own differ does it.
//
// Diff (making a layer from two mount sets) always answers NotImplemented.
#include <memory>

#include "WriteImporter.h"
#include "containerd/services/diff/v1/diff.grpc.pb.h"
#include "store/ContentStore.h"
#include "store/SnapshotStore.h"

namespace snapimport::plugin {

namespace diffv1 = ::containerd::services::diff::v1;

class DiffService final : public diffv1::Diff::Service {
 public:
  // `writes` may be null (import from writes off): every Apply then unpacks from the store.
  DiffService(std::shared_ptr<store::SnapshotStore> snapshots,
              std::shared_ptr<store::ContentStore> content, std::shared_ptr<WriteImporter> writes);

  grpc::Status Apply(grpc::ServerContext*, const diffv1::ApplyRequest*,
                     diffv1::ApplyResponse*) override;
  grpc::Status Diff(grpc::ServerContext*, const diffv1::DiffRequest*,
                    diffv1::DiffResponse*) override;

 private:
  std::shared_ptr<store::SnapshotStore> snapshots_;
  std::shared_ptr<store::ContentStore> content_;
  std::shared_ptr<WriteImporter> writes_;
};

}  // namespace snapimport::plugin
