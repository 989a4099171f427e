#pragma once
// What the importer is doing right now, per image and per layer, for `snapimport status` (served
// as JSON on the admin socket's /status). The importer reports; nothing here drives it.
//
// Layer jobs are deduplicated by digest, so progress is kept per layer digest and every image that
// lists a digest shows the same layer entry. Finished images stay visible for a short while (and
// at most kRecentImages of them), so a status taken just after a pull still shows how it went.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace snapimport::progress {

enum class LayerState { Queued, Fetching, Committing, Done, Failed, Fallback };
const char* stateName(LayerState s);
// Inverse of stateName; false for an unknown name.
bool parseState(const std::string& name, LayerState& out);

struct LayerProgress {
  std::string digest;
  uint64_t size = 0;     // compressed size from the manifest (0: unknown)
  uint64_t fetched = 0;  // compressed bytes received so far
  uint64_t written = 0;  // file bytes written so far
  LayerState state = LayerState::Queued;
  std::string error;   // why it failed or fell back
  double seconds = 0;  // since the job started; total once finished
  // Where the layer's bytes come from: "registry" (the importer fetches it) or "content"
  // (containerd's own write of the blob into the content store); empty before anyone started.
  std::string source;
  // How the layer reaches containerd's snapshot: "prepare" (committed for containerd's Prepare,
  // which answers AlreadyExists) or "apply" (the diff service puts it into the snapshot
  // containerd asked it to apply the layer to); empty while that is not known yet.
  std::string via;
};

struct ImageProgress {
  std::string ref;       // e.g. registry.example/app:1.2
  std::string manifest;  // manifest digest
  bool finished = false;
  double seconds = 0;                 // since the first layer was scheduled; total once finished
  std::vector<LayerProgress> layers;  // bottom layer first
};

class ImportProgress {
 public:
  static constexpr size_t kRecentImages = 8;
  static constexpr std::chrono::seconds kRecentFor{120};

  using Clock = std::chrono::steady_clock;

  // The daemon's tracker; tests build their own.
  static ImportProgress& daemon();

  // An image's layers were scheduled: (digest, compressed size) bottom first. Calling it again
  // for the same ref and manifest (another pull of the same image) keeps one entry.
  void imageStarted(const std::string& ref, const std::string& manifest,
                    const std::vector<std::pair<std::string, uint64_t>>& layers);
  // The pull is over (all layers done, failed or fallen back, or cancelled).
  void imageFinished(const std::string& ref, const std::string& manifest);

  void layerState(const std::string& digest, LayerState state, const std::string& error = {});
  // See LayerProgress::source and ::via.
  void layerSource(const std::string& digest, const std::string& source, const std::string& via);
  // Totals so far (not increments), so a retried fetch can start counting again from 0.
  void layerBytes(const std::string& digest, uint64_t fetched, uint64_t written);

  // In-flight images first (oldest first), then recently finished ones (newest first).
  std::vector<ImageProgress> snapshot() const;
  std::vector<ImageProgress> snapshot(Clock::time_point now) const;

 private:
  struct Layer {
    LayerProgress p;
    Clock::time_point started{};
    Clock::time_point ended{};
  };
  struct Image {
    std::string ref;
    std::string manifest;
    std::vector<std::string> digests;
    Clock::time_point started{};
    Clock::time_point ended{};
    bool finished = false;
  };

  void pruneLocked(Clock::time_point now);
  LayerProgress viewLocked(const std::string& digest, Clock::time_point now) const;

  mutable std::mutex mu_;
  std::vector<Image> images_;
  std::map<std::string, Layer> layers_;
};

// The /status document: {"images":[{"ref","manifest","finished","seconds","layers":[...]}]}.
std::string toJson(const std::vector<ImageProgress>& images);
// Throws std::runtime_error on a document that is not one.
std::vector<ImageProgress> fromJson(const std::string& json);

}  // namespace snapimport::progress
