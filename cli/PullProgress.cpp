#include "PullProgress.h"

#include <algorithm>
#include <cstdio>

#include "StatusCommand.h"
#include "registry/Reference.h"

namespace snapimport::cli {
namespace {

// The rate is measured over this window: long enough to smooth the tracker's throttled
// updates, short enough to follow a stall.
constexpr double kRateWindowSeconds = 3.0;
constexpr double kMinRateSpan = 0.5;
constexpr size_t kBarWidth = 20;
constexpr size_t kRateWidth = 13;  // "  123.4 KiB/s"

std::string normalize(const std::string& ref) {
  try {
    return registry::Reference::parse(ref).str();
  } catch (const std::exception&) {
    return ref;
  }
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

// Strings are built by appending throughout: GCC 12 at -O3 reports a false -Wrestrict for
// "literal" + string&&.
std::string bar(uint64_t part, uint64_t whole) {
  double share =
      whole == 0 || part >= whole ? 1.0 : static_cast<double>(part) / static_cast<double>(whole);
  size_t filled = static_cast<size_t>(static_cast<double>(kBarWidth) * share);
  std::string b = "[";
  b.append(filled, '=');
  if (filled < kBarWidth) {
    b += '>';
    b.append(kBarWidth - filled - 1, ' ');
  }
  b += ']';
  return b;
}

// Keeps the start of a name that does not fit (the registry and repository say more than the
// tail of a tag), marking the cut.
std::string fit(const std::string& text, size_t width) {
  if (text.size() <= width) return text;
  if (width <= 3) return text.substr(0, width);
  return text.substr(0, width - 3) + "...";
}

}  // namespace

std::pair<uint64_t, uint64_t> fetchedOfTotal(const progress::ImageProgress& image) {
  uint64_t fetched = 0, total = 0;
  for (const auto& l : image.layers) {
    total += l.size;
    fetched += l.size == 0 || l.fetched < l.size ? l.fetched : l.size;
  }
  return {fetched, total};
}

std::string renderPullLine(const PullLineData& d, size_t width) {
  // The full tail, and a compact one for narrow terminals.
  std::string tail, compact, barText;
  // Room kept for a rate not shown yet, so the bar does not come and go as the rate does.
  size_t rateReserve = 0;
  if (d.progress) {
    const auto& p = *d.progress;
    auto [fetched, total] = fetchedOfTotal(p);
    size_t done = 0, failed = 0, fallback = 0;
    for (const auto& l : p.layers) {
      done += l.state == progress::LayerState::Done;
      failed += l.state == progress::LayerState::Failed;
      fallback += l.state == progress::LayerState::Fallback;
    }
    std::string layers = std::to_string(done);
    layers += '/';
    layers += std::to_string(p.layers.size());
    layers += " layers";
    if (fallback) {
      layers += ", ";
      layers += std::to_string(fallback);
      layers += " by containerd";
    }
    if (failed) {
      layers += ", ";
      layers += std::to_string(failed);
      layers += " failed";
    }
    tail = humanBytes(fetched);
    if (total) {
      barText = bar(fetched, total);
      tail += " / ";
      tail += humanBytes(total);
      compact = std::to_string(fetched >= total ? 100 : fetched * 100 / total);
      compact += "%  ";
    }
    if (d.bytesPerSecond && !p.finished) {
      tail += "  ";
      tail += humanBytes(static_cast<uint64_t>(*d.bytesPerSecond));
      tail += "/s";
    } else {
      rateReserve = kRateWidth;
    }
    tail += "  ";
    tail += layers;
    compact += layers;
  } else {
    tail = compact = "pulling ...";
  }
  for (std::string* t : {&tail, &compact}) {
    *t += "  ";
    *t += seconds(d.seconds);
  }

  // The bar only shows beside the whole name; when space runs out it goes first, then the bytes,
  // and the name keeps at least this much.
  const size_t minName = std::min<size_t>(d.image.size(), 16);
  for (const std::string* t : {&tail, &compact}) {
    if (t->size() + 2 + minName > width) continue;
    size_t room = width - t->size() - 2;
    std::string line;
    if (t == &tail && !barText.empty() &&
        room >= d.image.size() + 2 + barText.size() + rateReserve) {
      line = d.image;
      line += "  ";
      line += barText;
    } else {
      line = fit(d.image, room);
    }
    line += "  ";
    line += *t;
    return line;
  }
  std::string line = d.image;
  line += "  ";
  line += compact;
  return fit(line, width);
}

PullProgress::PullProgress(std::vector<std::string> images) : images_(std::move(images)) {
  for (const auto& i : images_) normalized_.push_back(normalize(i));
}

void PullProgress::baseline(const std::vector<progress::ImageProgress>& snapshot) {
  for (const auto& p : snapshot)
    if (p.finished) stale_.emplace(normalize(p.ref), p.manifest);
}

void PullProgress::clear() {
  snapshot_.clear();
  entries_.clear();
  samples_.clear();
}

void PullProgress::update(std::vector<progress::ImageProgress> snapshot, double now) {
  snapshot_ = std::move(snapshot);
  entries_.clear();
  for (size_t s = 0; s < snapshot_.size(); ++s) {
    const auto& p = snapshot_[s];
    auto key = std::make_pair(normalize(p.ref), p.manifest);
    if (!p.finished) stale_.erase(key);  // imported again: this pull's
    if (stale_.count(key)) continue;
    for (size_t i = 0; i < normalized_.size(); ++i) {
      // The snapshot lists in-flight images first: keep the first match.
      if (normalized_[i] == key.first && !entries_.count(i)) entries_[i] = s;
    }
  }
  for (auto& [i, samples] : samples_)
    if (!entries_.count(i)) samples.clear();
  for (const auto& [i, s] : entries_) {
    uint64_t fetched = fetchedOfTotal(snapshot_[s]).first;
    auto& samples = samples_[i];
    // A retried layer counts again from 0: start measuring afresh.
    if (!samples.empty() && fetched < samples.back().fetched) samples.clear();
    samples.push_back({now, fetched});
    while (samples.size() > 2 && now - samples[1].time >= kRateWindowSeconds) samples.pop_front();
  }
}

const progress::ImageProgress* PullProgress::entryFor(size_t index) const {
  auto it = entries_.find(index);
  return it == entries_.end() ? nullptr : &snapshot_[it->second];
}

std::optional<double> PullProgress::rateFor(size_t index) const {
  auto it = samples_.find(index);
  if (it == samples_.end() || it->second.size() < 2) return std::nullopt;
  const Sample& first = it->second.front();
  const Sample& last = it->second.back();
  double span = last.time - first.time;
  if (span < kMinRateSpan) return std::nullopt;
  return static_cast<double>(last.fetched - first.fetched) / span;
}

std::vector<std::string> PullProgress::lines(const std::vector<std::pair<size_t, double>>& running,
                                             size_t width) const {
  std::vector<std::string> out;
  for (const auto& [i, secs] : running)
    out.push_back(renderPullLine({images_.at(i), secs, entryFor(i), rateFor(i)}, width));
  return out;
}

}  // namespace snapimport::cli
