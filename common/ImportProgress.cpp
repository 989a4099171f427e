#include "ImportProgress.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace snapimport::progress {
namespace {

constexpr std::pair<LayerState, const char*> kStateNames[] = {
    {LayerState::Queued, "queued"},         {LayerState::Fetching, "fetching"},
    {LayerState::Committing, "committing"}, {LayerState::Done, "done"},
    {LayerState::Failed, "failed"},         {LayerState::Fallback, "fallback"},
};

bool isEnd(LayerState s) {
  return s == LayerState::Done || s == LayerState::Failed || s == LayerState::Fallback;
}

double secondsBetween(ImportProgress::Clock::time_point a, ImportProgress::Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

const char* stateName(LayerState s) {
  for (const auto& [state, name] : kStateNames) {
    if (state == s) return name;
  }
  return "queued";
}

bool parseState(const std::string& name, LayerState& out) {
  for (const auto& [state, n] : kStateNames) {
    if (name == n) {
      out = state;
      return true;
    }
  }
  return false;
}

ImportProgress& ImportProgress::daemon() {
  static ImportProgress* instance =
      new ImportProgress();  // never destroyed: importer threads may outlive main
  return *instance;
}

void ImportProgress::imageStarted(const std::string& ref, const std::string& manifest,
                                  const std::vector<std::pair<std::string, uint64_t>>& layers) {
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  pruneLocked(now);
  for (const auto& [digest, size] : layers) {
    auto [it, inserted] = layers_.try_emplace(digest);
    if (inserted) {
      it->second.p.digest = digest;
      it->second.started = now;
    }
    if (size != 0) it->second.p.size = size;
  }
  for (auto& img : images_) {
    if (!img.finished && img.ref == ref && img.manifest == manifest) return;
  }
  Image img{ref, manifest, {}, now, {}, false};
  for (const auto& l : layers) img.digests.push_back(l.first);
  images_.push_back(std::move(img));
}

void ImportProgress::imageFinished(const std::string& ref, const std::string& manifest) {
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  for (auto& img : images_) {
    if (!img.finished && img.ref == ref && img.manifest == manifest) {
      img.finished = true;
      img.ended = now;
    }
  }
  pruneLocked(now);
}

void ImportProgress::layerState(const std::string& digest, LayerState state,
                                const std::string& error) {
  std::lock_guard lock(mu_);
  auto it = layers_.find(digest);
  if (it == layers_.end()) return;  // not part of a tracked image (or already pruned)
  Layer& l = it->second;
  if (l.p.state == LayerState::Queued && state != LayerState::Queued) l.started = Clock::now();
  l.p.state = state;
  l.p.error = error;
  if (isEnd(state)) l.ended = Clock::now();
}

void ImportProgress::layerSource(const std::string& digest, const std::string& source,
                                 const std::string& via) {
  std::lock_guard lock(mu_);
  auto it = layers_.find(digest);
  if (it == layers_.end()) return;
  it->second.p.source = source;
  it->second.p.via = via;
}

void ImportProgress::layerBytes(const std::string& digest, uint64_t fetched, uint64_t written) {
  std::lock_guard lock(mu_);
  auto it = layers_.find(digest);
  if (it == layers_.end()) return;
  it->second.p.fetched = fetched;
  it->second.p.written = written;
}

std::vector<ImageProgress> ImportProgress::snapshot() const { return snapshot(Clock::now()); }

std::vector<ImageProgress> ImportProgress::snapshot(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  std::vector<ImageProgress> running, finished;
  for (const auto& img : images_) {
    if (img.finished && now - img.ended > kRecentFor) continue;
    ImageProgress p{img.ref,
                    img.manifest,
                    img.finished,
                    secondsBetween(img.started, img.finished ? img.ended : now),
                    {}};
    for (const auto& d : img.digests) p.layers.push_back(viewLocked(d, now));
    (img.finished ? finished : running).push_back(std::move(p));
  }
  std::reverse(finished.begin(), finished.end());
  running.insert(running.end(), finished.begin(), finished.end());
  return running;
}

LayerProgress ImportProgress::viewLocked(const std::string& digest, Clock::time_point now) const {
  auto it = layers_.find(digest);
  if (it == layers_.end()) return LayerProgress{digest, 0, 0, 0, LayerState::Queued, {}, 0, {}, {}};
  LayerProgress p = it->second.p;
  p.seconds = secondsBetween(it->second.started, isEnd(p.state) ? it->second.ended : now);
  return p;
}

void ImportProgress::pruneLocked(Clock::time_point now) {
  // Keep every running image, and the newest kRecentImages finished ones younger than kRecentFor.
  std::vector<Image> kept;
  size_t finishedKept = 0;
  for (auto it = images_.rbegin(); it != images_.rend(); ++it) {
    if (it->finished && (finishedKept >= kRecentImages || now - it->ended > kRecentFor)) continue;
    if (it->finished) ++finishedKept;
    kept.push_back(std::move(*it));
  }
  images_.assign(std::make_move_iterator(kept.rbegin()), std::make_move_iterator(kept.rend()));
  std::set<std::string> used;
  for (const auto& img : images_) used.insert(img.digests.begin(), img.digests.end());
  std::erase_if(layers_, [&](const auto& kv) { return !used.count(kv.first); });
}

std::string toJson(const std::vector<ImageProgress>& images) {
  nlohmann::json doc = {{"images", nlohmann::json::array()}};
  for (const auto& img : images) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : img.layers) {
      layers.push_back({{"digest", l.digest},
                        {"size", l.size},
                        {"fetched_bytes", l.fetched},
                        {"written_bytes", l.written},
                        {"state", stateName(l.state)},
                        {"error", l.error},
                        {"seconds", l.seconds},
                        {"source", l.source},
                        {"via", l.via}});
    }
    doc["images"].push_back({{"ref", img.ref},
                             {"manifest", img.manifest},
                             {"finished", img.finished},
                             {"seconds", img.seconds},
                             {"layers", std::move(layers)}});
  }
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<ImageProgress> fromJson(const std::string& json) {
  std::vector<ImageProgress> out;
  try {
    nlohmann::json doc = nlohmann::json::parse(json);
    for (const auto& i : doc.at("images")) {
      ImageProgress img;
      img.ref = i.at("ref").get<std::string>();
      img.manifest = i.at("manifest").get<std::string>();
      img.finished = i.at("finished").get<bool>();
      img.seconds = i.at("seconds").get<double>();
      for (const auto& l : i.at("layers")) {
        LayerProgress p;
        p.digest = l.at("digest").get<std::string>();
        p.size = l.at("size").get<uint64_t>();
        p.fetched = l.at("fetched_bytes").get<uint64_t>();
        p.written = l.at("written_bytes").get<uint64_t>();
        if (!parseState(l.at("state").get<std::string>(), p.state)) {
          throw std::runtime_error("unknown layer state \"" + l.at("state").get<std::string>() +
                                   "\"");
        }
        p.error = l.at("error").get<std::string>();
        p.seconds = l.at("seconds").get<double>();
        // Absent from the documents of daemons older than these fields.
        p.source = l.value("source", std::string());
        p.via = l.value("via", std::string());
        img.layers.push_back(std::move(p));
      }
      out.push_back(std::move(img));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("malformed status document: ") + e.what());
  }
  return out;
}

}  // namespace snapimport::progress
