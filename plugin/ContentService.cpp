#include "ContentService.h"

#include <algorithm>
#include <optional>

#include "ErrorMapping.h"
#include "common/Log.h"
#include "store/Ingest.h"
#include "store/StoreError.h"

namespace snapimport::plugin {
namespace {

using store::Digest;
using store::ErrorClass;
using store::fail;

void setTime(store::ContentTime t, google::protobuf::Timestamp* ts) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns / 1'000'000'000;
  int64_t nanos = ns % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --secs;
  }
  ts->set_seconds(secs);
  ts->set_nanos(static_cast<int32_t>(nanos));
}

void toProto(const store::BlobInfo& info, contentv1::Info* out) {
  out->set_digest(info.digest.str());
  out->set_size(info.size);
  setTime(info.createdAt, out->mutable_created_at());
  setTime(info.updatedAt, out->mutable_updated_at());
  for (const auto& [k, v] : info.labels) (*out->mutable_labels())[k] = v;
}

void toProto(const store::IngestStatus& s, contentv1::Status* out) {
  setTime(s.startedAt, out->mutable_started_at());
  setTime(s.updatedAt, out->mutable_updated_at());
  out->set_ref(s.ref);
  out->set_offset(s.offset);
  out->set_total(s.total);
  if (s.expected) out->set_expected(s.expected->str());
}

store::Labels fromProto(const google::protobuf::Map<std::string, std::string>& labels) {
  return store::Labels(labels.begin(), labels.end());
}

const char* actionName(int action) {
  switch (action) {
    case contentv1::STAT:
      return "STAT";
    case contentv1::WRITE:
      return "WRITE";
    case contentv1::COMMIT:
      return "COMMIT";
  }
  return "unknown";
}

}  // namespace

ContentService::ContentService(std::shared_ptr<store::ContentStore> store,
                               std::shared_ptr<WriteImporter> writes)
    : store_(std::move(store)), writes_(std::move(writes)) {}

grpc::Status ContentService::Info(grpc::ServerContext*, const contentv1::InfoRequest* req,
                                  contentv1::InfoResponse* resp) {
  return guarded([&] {
    toProto(store_->info(Digest::parse(req->digest())), resp->mutable_info());
    return grpc::Status::OK;
  });
}

grpc::Status ContentService::Update(grpc::ServerContext*, const contentv1::UpdateRequest* req,
                                    contentv1::UpdateResponse* resp) {
  return guarded([&] {
    std::vector<std::string> paths(req->update_mask().paths().begin(),
                                   req->update_mask().paths().end());
    Digest digest = Digest::parse(req->info().digest());
    toProto(store_->update(digest, fromProto(req->info().labels()), paths), resp->mutable_info());
    if (writes_) writes_->labelsUpdated(digest.str(), fromProto(req->info().labels()));
    return grpc::Status::OK;
  });
}

grpc::Status ContentService::List(grpc::ServerContext*, const contentv1::ListContentRequest* req,
                                  grpc::ServerWriter<contentv1::ListContentResponse>* writer) {
  return guarded([&] {
    std::vector<std::string> filters(req->filters().begin(), req->filters().end());
    std::vector<store::BlobInfo> infos = store_->list(filters);
    contentv1::ListContentResponse batch;
    for (const auto& info : infos) {
      toProto(info, batch.add_info());
      if (batch.info_size() >= kListBatch) {
        if (!writer->Write(batch))
          return grpc::Status(grpc::StatusCode::CANCELLED, "list: client went away");
        batch.Clear();
      }
    }
    if (batch.info_size() > 0 && !writer->Write(batch)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "list: client went away");
    }
    return grpc::Status::OK;
  });
}

grpc::Status ContentService::Delete(grpc::ServerContext*,
                                    const contentv1::DeleteContentRequest* req,
                                    google::protobuf::Empty*) {
  return guarded([&] {
    Digest digest = Digest::parse(req->digest());
    store_->remove(digest);
    if (writes_) writes_->blobDeleted(digest.str());
    return grpc::Status::OK;
  });
}

grpc::Status ContentService::Read(grpc::ServerContext*, const contentv1::ReadContentRequest* req,
                                  grpc::ServerWriter<contentv1::ReadContentResponse>* writer) {
  return guarded([&] {
    store::ContentReader reader = store_->openReader(Digest::parse(req->digest()));
    const int64_t blobSize = reader.size();
    int64_t offset = std::max<int64_t>(req->offset(), 0);
    if (offset > blobSize) {
      fail(ErrorClass::OutOfRange, "read content " + reader.digest().str() + " at offset " +
                                       std::to_string(offset) + ": past the end of the blob (" +
                                       std::to_string(blobSize) + " bytes)");
    }
    // size is how much the caller wants, which may run past the end; it gets what there is.
    int64_t size = req->size();
    if (size <= 0 || size > blobSize - offset) size = blobSize - offset;
    const int64_t end = offset + size;

    contentv1::ReadContentResponse chunk;
    std::string* data = chunk.mutable_data();
    while (offset < end) {
      size_t want = static_cast<size_t>(std::min<int64_t>(kReadChunkBytes, end - offset));
      data->resize(want);  // the string is reused, so this only writes zeros the first time
      size_t got = reader.readAt(offset, data->data(), want);
      if (got == 0) {
        fail(ErrorClass::DataLoss,
             "read content " + reader.digest().str() + ": blob ended at " + std::to_string(offset) +
                 " bytes, before its recorded size of " + std::to_string(blobSize));
      }
      data->resize(got);
      chunk.set_offset(offset);
      offset += static_cast<int64_t>(got);
      if (offset >= end) {
        // The last chunk goes out with the status in one write: containerd's ReaderAt makes one
        // Read per 32 KiB, and a separate trailer costs both sides another wake-up per call.
        writer->WriteLast(chunk, grpc::WriteOptions());
        break;
      }
      if (!writer->Write(chunk))
        return grpc::Status(grpc::StatusCode::CANCELLED, "read: client went away");
    }
    return grpc::Status::OK;
  });
}

grpc::Status ContentService::Status(grpc::ServerContext*, const contentv1::StatusRequest* req,
                                    contentv1::StatusResponse* resp) {
  return guarded([&] {
    toProto(store_->status(req->ref()), resp->mutable_status());
    return grpc::Status::OK;
  });
}

grpc::Status ContentService::ListStatuses(grpc::ServerContext*,
                                          const contentv1::ListStatusesRequest* req,
                                          contentv1::ListStatusesResponse* resp) {
  return guarded([&] {
    std::vector<std::string> filters(req->filters().begin(), req->filters().end());
    for (const auto& s : store_->listStatuses(filters)) toProto(s, resp->add_statuses());
    return grpc::Status::OK;
  });
}

// The lock-step protocol of containerd's content server: one response per request, the writer
// lock held for the life of the stream. See reference/containerd-api.md §1.2.
grpc::Status ContentService::Write(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<contentv1::WriteContentResponse, contentv1::WriteContentRequest>*
        stream) {
  std::string ref;
  grpc::Status status = guarded([&] {
    contentv1::WriteContentRequest req;
    if (!stream->Read(&req)) return grpc::Status::OK;  // the client left before saying anything
    ref = req.ref();
    if (ref.empty()) fail(ErrorClass::InvalidArgument, "write: the first message must carry a ref");
    int64_t total = req.total();
    std::optional<Digest> expected;
    if (!req.expected().empty()) expected = Digest::parse(req.expected());
    // A manifest or config containerd already has is not written again; index it all the same.
    if (writes_ && expected && WriteImporter::indexes(ref) && store_->contains(*expected)) {
      writes_->blobWritten(ref, expected->str());
    }
    std::unique_ptr<store::Ingest> ingest = store_->openIngest(ref, total, expected);
    // Destroyed with this scope: without a commit first, the tee's unpack is abandoned.
    std::unique_ptr<WriteImporter::Tee> tee;
    bool teeTried = false;  // one tee per stream, begun at its first bytes

    contentv1::WriteContentResponse resp;
    for (;;) {
      resp.Clear();
      resp.set_action(req.action());
      if (!req.expected().empty()) {
        Digest want = Digest::parse(req.expected());
        if (store_->contains(want)) {
          ingest->discard();
          fail(ErrorClass::AlreadyExists,
               "content " + want.str() + ": already exists; ingest \"" + ref + "\" discarded");
        }
        expected = want;
        ingest->setExpected(want);
      }
      if (req.total() > 0) {
        total = req.total();
        ingest->setTotal(total);
      }
      switch (req.action()) {
        case contentv1::STAT:
          resp.set_offset(ingest->offset());
          resp.set_total(total);
          resp.set_digest(ingest->digest().str());
          setTime(ingest->startedAt(), resp.mutable_started_at());
          setTime(ingest->updatedAt(), resp.mutable_updated_at());
          break;
        case contentv1::WRITE:
        case contentv1::COMMIT: {
          if (req.offset() > 0 && req.offset() != ingest->offset()) {
            fail(ErrorClass::OutOfRange, std::string(actionName(req.action())) + " to ingest \"" +
                                             ref + "\" at offset " + std::to_string(req.offset()) +
                                             " refused: the ingest holds " +
                                             std::to_string(ingest->offset()) + " bytes");
          }
          if (req.offset() == 0 && ingest->offset() > 0) {
            ingest->truncate();
            if (tee) tee->truncated();
            tee.reset();
            teeTried = true;
          }
          if (!req.data().empty()) {
            if (writes_ && !teeTried) {
              teeTried = true;
              tee = writes_->beginWrite(ref, expected ? expected->str() : std::string(),
                                        ingest->offset(), total);
            }
            if (tee && !tee->append(ingest->offset(), req.data())) tee.reset();
            ingest->write(std::move(*req.mutable_data()));
          }
          if (req.action() == contentv1::COMMIT) {
            const int64_t size = ingest->offset();
            // Releases the writer lock before this answer goes out.
            Digest committed = ingest->commit(total, expected, fromProto(req.labels()));
            resp.set_digest(committed.str());
            if (tee) tee->committed(committed.str(), size);
            tee.reset();
            if (writes_) writes_->blobWritten(ref, committed.str());
          }
          // WRITE answers carry no digest: it would wait for the hash, which runs behind the
          // writes (IngestHasher). containerd's proxy keeps the last digest it was sent.
          resp.set_offset(ingest->offset());
          break;
        }
        default:
          fail(ErrorClass::InvalidArgument, "write to ingest \"" + ref + "\": unknown action " +
                                                std::to_string(static_cast<int>(req.action())));
      }
      if (!stream->Write(resp))
        return grpc::Status(grpc::StatusCode::CANCELLED, "write: client went away");
      if (req.action() == contentv1::COMMIT) return grpc::Status::OK;
      if (!stream->Read(&req))
        return grpc::Status::OK;  // client closed: progress is kept for a resume
    }
  });
  if (status.error_code() == grpc::StatusCode::INTERNAL ||
      status.error_code() == grpc::StatusCode::DATA_LOSS) {
    log::error("content write failed", {{"ref", ref}, {"error", status.error_message()}});
  } else if (!status.ok()) {
    log::debug("content write refused", {{"ref", ref}, {"error", status.error_message()}});
  }
  return status;
}

grpc::Status ContentService::Abort(grpc::ServerContext*, const contentv1::AbortRequest* req,
                                   google::protobuf::Empty*) {
  return guarded([&] {
    store_->abort(req->ref());
    return grpc::Status::OK;
  });
}

}  // namespace snapimport::plugin
