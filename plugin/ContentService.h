#pragma once
// containerd.services.content.v1.Content over store::ContentStore, with the semantics of
// containerd's own content server (services/content/contentserver) so that containerd's proxy
// client behaves exactly as it does against the built-in store.
#include <memory>

#include "WriteImporter.h"
#include "containerd/services/content/v1/content.grpc.pb.h"
#include "store/ContentStore.h"

namespace snapimport::plugin {

namespace contentv1 = ::containerd::services::content::v1;

class ContentService final : public contentv1::Content::Service {
 public:
  // With `writes`, layer blobs are also unpacked as they stream in (WriteImporter::Tee), and
  // manifests and configs are indexed for it.
  explicit ContentService(std::shared_ptr<store::ContentStore> store,
                          std::shared_ptr<WriteImporter> writes = nullptr);

  // Read sends the blob in chunks of this size: far fewer messages than containerd's 32 KiB, and
  // far below the 16 MiB message limit on either side.
  static constexpr size_t kReadChunkBytes = 1 << 20;
  // List sends this many Infos per message, as containerd does.
  static constexpr int kListBatch = 100;

  grpc::Status Info(grpc::ServerContext*, const contentv1::InfoRequest*,
                    contentv1::InfoResponse*) override;
  grpc::Status Update(grpc::ServerContext*, const contentv1::UpdateRequest*,
                      contentv1::UpdateResponse*) override;
  grpc::Status List(grpc::ServerContext*, const contentv1::ListContentRequest*,
                    grpc::ServerWriter<contentv1::ListContentResponse>*) override;
  grpc::Status Delete(grpc::ServerContext*, const contentv1::DeleteContentRequest*,
                      google::protobuf::Empty*) override;
  grpc::Status Read(grpc::ServerContext*, const contentv1::ReadContentRequest*,
                    grpc::ServerWriter<contentv1::ReadContentResponse>*) override;
  grpc::Status Status(grpc::ServerContext*, const contentv1::StatusRequest*,
                      contentv1::StatusResponse*) override;
  grpc::Status ListStatuses(grpc::ServerContext*, const contentv1::ListStatusesRequest*,
                            contentv1::ListStatusesResponse*) override;
  grpc::Status Write(grpc::ServerContext*,
                     grpc::ServerReaderWriter<contentv1::WriteContentResponse,
                                              contentv1::WriteContentRequest>*) override;
  grpc::Status Abort(grpc::ServerContext*, const contentv1::AbortRequest*,
                     google::protobuf::Empty*) override;

 private:
  std::shared_ptr<store::ContentStore> store_;
  std::shared_ptr<WriteImporter> writes_;
};

}  // namespace snapimport::plugin
