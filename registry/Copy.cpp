#include "registry/Copy.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include "registry/Error.h"

namespace snapimport::registry {
namespace {

class CountingReader : public BlobReader {
 public:
  CountingReader(std::unique_ptr<BlobReader> inner, const Descriptor& d, CopyObserver* obs,
                 std::atomic<uint64_t>& total)
      : inner_(std::move(inner)), desc_(d), obs_(obs), total_(total) {}
  size_t read(void* buf, size_t len) override {
    size_t n = inner_->read(buf, len);
    done_ += n;
    total_ += n;
    if (obs_ && n) obs_->blobProgress(desc_, done_);
    return n;
  }

 private:
  std::unique_ptr<BlobReader> inner_;
  Descriptor desc_;
  CopyObserver* obs_;
  std::atomic<uint64_t>& total_;
  uint64_t done_ = 0;
};

class Copier {
 public:
  Copier(ImageSource& src, ImageDestination& dst, const CopyOptions& o)
      : src_(src), dst_(dst), o_(o) {}

  CopyResult run() {
    ManifestBlob top = src_.topManifest();
    if (mediatype::isIndex(top.mediaType)) {
      ImageIndex idx = parseIndex(top.bytes, src_.describe());
      if (o_.all) {
        if (!dst_.supportsIndex()) {
          throw Error(ErrorKind::Unsupported,
                      dst_.describe() +
                          " holds a single image; copy one platform (--platform) instead of --all");
        }
        copyIndexChildren(idx, 0);
        writeManifest(top, true);
      } else {
        ManifestBlob m = top;
        for (int depth = 0; mediatype::isIndex(m.mediaType); ++depth) {
          if (depth > 4)
            throw Error(ErrorKind::Invalid, src_.describe() + ": indexes nested too deep");
          Descriptor d =
              selectPlatform(parseIndex(m.bytes, src_.describe()), o_.platform, src_.describe());
          m = src_.manifest(d);
        }
        copyManifest(m);
        writeManifest(m, true);
        top = m;
      }
    } else {
      copyManifest(top);
      writeManifest(top, true);
    }
    dst_.commit();
    result_.digest = top.digest;
    result_.bytesCopied = bytes_.load();
    result_.blobsCopied = copied_.load();
    result_.blobsSkipped = skipped_.load();
    return result_;
  }

 private:
  void copyIndexChildren(const ImageIndex& idx, int depth) {
    if (depth > 4) throw Error(ErrorKind::Invalid, src_.describe() + ": indexes nested too deep");
    for (const auto& d : idx.manifests) {
      if (!mediatype::isIndex(d.mediaType) && !mediatype::isManifest(d.mediaType)) {
        throw Error(ErrorKind::Unsupported, src_.describe() + ": index entry " + d.digest.str() +
                                                " has media type " + d.mediaType +
                                                ", which --all cannot copy");
      }
      ManifestBlob m = src_.manifest(d);
      if (mediatype::isIndex(m.mediaType)) {
        copyIndexChildren(parseIndex(m.bytes, src_.describe()), depth + 1);
      } else {
        copyManifest(m);
      }
      writeManifest(m, false);
    }
  }

  void copyManifest(const ManifestBlob& m) {
    ImageManifest im = parseManifest(m.bytes, src_.describe() + " (" + m.digest.str() + ")");
    std::vector<Descriptor> blobs{im.config};
    blobs.insert(blobs.end(), im.layers.begin(), im.layers.end());
    copyBlobs(blobs);
  }

  void copyBlobs(const std::vector<Descriptor>& all) {
    std::vector<Descriptor> todo;
    for (const auto& d : all) {
      if (seen_.insert(d.digest.str()).second) todo.push_back(d);
    }
    // Largest first: the copy ends when its last blob does, and a large blob started late would
    // run alone at the end while the other workers have nothing left to do.
    std::stable_sort(todo.begin(), todo.end(),
                     [](const Descriptor& a, const Descriptor& b) { return a.size > b.size; });
    std::atomic<size_t> next{0};
    std::mutex errMu;
    std::exception_ptr error;
    auto worker = [&] {
      while (true) {
        size_t i = next++;
        if (i >= todo.size()) return;
        {
          std::lock_guard lock(errMu);
          if (error) return;
        }
        try {
          copyBlob(todo[i]);
        } catch (...) {
          std::lock_guard lock(errMu);
          if (!error) error = std::current_exception();
          return;
        }
      }
    };
    int n = std::max(1, std::min<int>(o_.parallelBlobs, static_cast<int>(todo.size())));
    std::vector<std::thread> threads;
    for (int i = 1; i < n; ++i) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
  }

  void copyBlob(const Descriptor& d) {
    if (o_.observer) o_.observer->blobStarted(d);
    if (dst_.hasBlob(d)) {
      ++skipped_;
      if (o_.observer) o_.observer->blobFinished(d, true);
      return;
    }
    // Hashed once: by the destination when it checks digests itself, else by the source.
    const BlobCheck check = dst_.checksBlobDigests() ? BlobCheck::Size : BlobCheck::SizeAndDigest;
    BlobSource source = [this, d, check]() -> std::unique_ptr<BlobReader> {
      return std::make_unique<CountingReader>(src_.blob(d, check), d, o_.observer, bytes_);
    };
    try {
      dst_.putBlob(d, source, src_.registryRepository());
    } catch (const Error& e) {
      if (e.code() != "DIGEST_INVALID") throw;
      throw Error(ErrorKind::Verification,
                  src_.describe() + ": blob " + d.digest.str() +
                      " does not match its digest: " + dst_.describe() +
                      " hashed the bytes read from it and refused them (" + e.what() + ")",
                  e.httpStatus(), e.code());
    }
    ++copied_;
    if (o_.observer) o_.observer->blobFinished(d, false);
  }

  void writeManifest(const ManifestBlob& m, bool top) {
    dst_.putManifest(m, top);
    if (o_.observer) o_.observer->manifestWritten(m);
  }

  ImageSource& src_;
  ImageDestination& dst_;
  const CopyOptions& o_;
  std::set<std::string> seen_;
  std::atomic<uint64_t> bytes_{0};
  std::atomic<int> copied_{0}, skipped_{0};
  CopyResult result_;
};

}  // namespace

CopyResult copyImage(ImageSource& src, ImageDestination& dst, const CopyOptions& options) {
  return Copier(src, dst, options).run();
}

}  // namespace snapimport::registry
