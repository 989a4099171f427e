// Push: blobs (HEAD first, cross-repository mount, monolithic / POST+PUT / chunked PATCH with 416
// recovery), then manifests. Upload Locations may be relative or absolute and keep their query
// (distribution's _state token); the digest is appended to it, never rebuilt.
#include <algorithm>

#include "common/Log.h"
#include "registry/Client.h"
#include "registry/ClientRequest.h"
#include "registry/Error.h"

namespace snapimport::registry {
namespace {

// Blobs up to this size go up in one POST with ?digest= (monolithic); a registry that doesn't
// take that answers 202 and we PUT the body to the session.
constexpr uint64_t kMonolithicMax = 1 << 20;

// Reads at most `limit` bytes from a shared reader.
class LimitedReader : public BlobReader {
 public:
  LimitedReader(std::shared_ptr<BlobReader> inner, uint64_t limit, uint64_t* position)
      : inner_(std::move(inner)), left_(limit), position_(position) {}
  size_t read(void* buf, size_t len) override {
    if (left_ == 0) return 0;
    size_t n = inner_->read(buf, std::min<uint64_t>(len, left_));
    left_ -= n;
    *position_ += n;
    return n;
  }

 private:
  std::shared_ptr<BlobReader> inner_;
  uint64_t left_;
  uint64_t* position_;
};

void skipBytes(BlobReader& r, uint64_t n) {
  char buf[65536];
  while (n > 0) {
    size_t k = r.read(buf, std::min<uint64_t>(n, sizeof buf));
    if (k == 0) throw Error(ErrorKind::Io, "blob source ended early while seeking");
    n -= k;
  }
}

// Parses "0-1234" (distribution's Range header on upload sessions) into the next offset.
std::optional<uint64_t> nextOffsetFromRange(const std::string& range) {
  auto dash = range.find('-');
  if (dash == std::string::npos) return std::nullopt;
  std::string end = range.substr(dash + 1);
  if (end.empty() || !std::all_of(end.begin(), end.end(), ::isdigit)) return std::nullopt;
  return std::stoull(end) + 1;
}

}  // namespace

bool Client::blobExists(const Reference& repo, const Digest& digest) {
  Request r;
  r.method = "HEAD";
  r.path = "/blobs/" + digest.str();
  r.caps = kPush;
  r.scopes.addRepository(repo.path, "pull,push");
  r.action = "check blob " + digest.str() + " in";
  auto s = send(repo, r);
  if (s->status() == 200) return true;
  if (s->status() == 404) return false;
  throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
}

bool Client::pushBlob(const Reference& repo, const Descriptor& blob, const BlobSource& source,
                      const std::string& mountFrom, bool checked) {
  if (!checked && blobExists(repo, blob.digest)) return false;
  const std::string what = "push blob " + blob.digest.str() + " to";
  Scopes scopes;
  scopes.addRepository(repo.path, "pull,push");

  // 1. Cross-repository mount, or just a session.
  std::string location;
  RegistryHost host;
  auto startSession = [&](bool mount, bool monolithic) -> long {
    Request r;
    r.method = "POST";
    r.path = "/blobs/uploads/";
    r.caps = kPush;
    r.scopes = scopes;
    r.action = what;
    if (mount) {
      r.path = appendQuery(appendQuery(r.path, "mount", blob.digest.str()), "from", mountFrom);
      r.scopes.addRepository(mountFrom, "pull");
    }
    if (monolithic) {
      r.path = appendQuery(r.path, "digest", blob.digest.str());
      r.bodySource = source;
      r.bodySize = static_cast<uint64_t>(blob.size);
      r.headers.add("Content-Type", "application/octet-stream");
    }
    auto s = send(repo, r);
    long st = s->status();
    if ((st == 401 || st == 403) && mount) return st;  // private source repository: upload instead
    if (st != 201 && st != 202) throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
    host = r.usedHost;
    std::string loc = s->headers().get("Location");
    if (st == 202 && loc.empty()) {
      throw Error(ErrorKind::Invalid, what + " " + repo.str() + " on " + host.host +
                                          ": upload session without a Location");
    }
    if (!loc.empty()) location = resolveUrl(r.finalUrl, loc);
    return st;
  };

  if (!mountFrom.empty() && mountFrom != repo.path) {
    long st = startSession(true, false);
    if (st == 201) {
      log::info("mounted blob",
                {{"blob", blob.digest.shortForm()}, {"from", mountFrom}, {"to", repo.name()}});
      return false;
    }
    if (st != 202) location.clear();
  }
  const uint64_t size = static_cast<uint64_t>(blob.size);
  bool chunked = options_.forceChunked || size > options_.chunkSize;
  if (location.empty()) {
    bool monolithic = !chunked && size <= kMonolithicMax;
    long st = startSession(false, monolithic);
    if (st == 201) return true;
  }

  auto sessionRequest = [&](const std::string& method, const std::string& url) {
    Request r;
    r.method = method;
    r.absoluteUrl = url;
    r.fixedHost = host;
    r.caps = kPush;
    r.scopes = scopes;
    r.action = what;
    r.followRedirects = false;
    return r;
  };

  if (!chunked) {
    // 2. POST then PUT with the whole body.
    Request r = sessionRequest("PUT", appendQuery(location, "digest", blob.digest.str()));
    r.bodySource = source;
    r.bodySize = size;
    r.headers.add("Content-Type", "application/octet-stream");
    auto s = send(repo, r);
    if (s->status() != 201) throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
    return true;
  }

  // 3. Chunked PATCHes; on 416 ask the session where it is and continue from there.
  std::shared_ptr<BlobReader> reader;
  uint64_t readerPos = 0;
  uint64_t offset = 0;
  int recoveries = 0;
  while (offset < size) {
    uint64_t len = std::min<uint64_t>(options_.chunkSize, size - offset);
    Request r = sessionRequest("PATCH", location);
    r.headers.add("Content-Type", "application/octet-stream");
    r.headers.add("Content-Range", std::to_string(offset) + "-" + std::to_string(offset + len - 1));
    r.bodySize = len;
    const uint64_t start = offset;
    r.bodySource = [&, start, len]() -> std::unique_ptr<BlobReader> {
      if (!reader || readerPos != start) {
        reader = std::shared_ptr<BlobReader>(source().release());
        readerPos = 0;
        skipBytes(*reader, start);
        readerPos = start;
      }
      return std::make_unique<LimitedReader>(reader, len, &readerPos);
    };
    auto s = send(repo, r);
    long st = s->status();
    if (st == 416) {
      if (++recoveries > options_.maxRetries)
        throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
      Request g = sessionRequest("GET", location);
      auto gs = send(repo, g);
      if (gs->status() != 204)
        throw failure(*gs, "recover upload of " + blob.digest.str() + " to", repo, g.finalUrl,
                      g.usedHost);
      if (auto loc = gs->headers().get("Location"); !loc.empty())
        location = resolveUrl(location, loc);
      auto next = nextOffsetFromRange(gs->headers().get("Range"));
      offset = next.value_or(0);
      log::warn("upload out of step (416), continuing where the registry is",
                {{"blob", blob.digest.shortForm()}, {"offset", std::to_string(offset)}});
      continue;
    }
    if (st != 202) throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
    if (auto loc = s->headers().get("Location"); !loc.empty()) location = resolveUrl(location, loc);
    auto next = nextOffsetFromRange(s->headers().get("Range"));
    offset = next.value_or(offset + len);
  }
  Request r = sessionRequest("PUT", appendQuery(location, "digest", blob.digest.str()));
  r.headers.add("Content-Type", "application/octet-stream");
  auto s = send(repo, r);
  if (s->status() != 201) throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
  return true;
}

Digest Client::pushManifest(const Reference& repo, const std::string& tagOrDigest,
                            const std::string& bytes, const std::string& mediaType) {
  if (bytes.size() > kMaxManifestSize) {
    throw Error(ErrorKind::Invalid,
                "push manifest to " + repo.str() + ": larger than the 4 MiB limit");
  }
  if (!Reference::isValidTag(tagOrDigest) && !Digest::isValid(tagOrDigest)) {
    throw Error(ErrorKind::Invalid, "push manifest to " + repo.str() + ": '" + tagOrDigest +
                                        "' is neither a tag nor a digest");
  }
  Digest digest = digestOf(bytes);
  Request r;
  r.method = "PUT";
  r.path = "/manifests/" + tagOrDigest;
  r.caps = kPush;
  r.scopes.addRepository(repo.path, "pull,push");
  r.body = bytes;
  r.headers.add("Content-Type", mediaType);
  r.action = "push manifest " + tagOrDigest + " to";
  auto s = send(repo, r);
  if (s->status() != 201 && s->status() != 200)
    throw failure(*s, r.action, repo, r.finalUrl, r.usedHost);
  std::string hdr = s->headers().get("Docker-Content-Digest");
  if (Digest::isValid(hdr) && hdr.starts_with("sha256:") && hdr != digest.str()) {
    throw Error(ErrorKind::Verification, r.action + " " + repo.str() + ": registry stored digest " +
                                             hdr + ", we sent " + digest.str());
  }
  return digest;
}

}  // namespace snapimport::registry
