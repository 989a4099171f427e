#pragma once
// The live view of `snapimport pull` on a terminal: one line per image being pulled, with what
// the daemon's progress tracker (the admin socket's /status, as `snapimport status` reads it)
// says about it: bytes fetched of the total, the rate, layers done of all.
//
//   127.0.0.1:5000/app:v1  [=======>         ]  12.3 MiB / 40.0 MiB  2.1 MiB/s  1/3 layers  4.0s
//
// Everything here is pure (snapshots in, lines out) so it is tested without a terminal; the
// command owns the socket, the clock and the cursor.
#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/ImportProgress.h"

namespace snapimport::cli {

// What one image's line shows.
struct PullLineData {
  std::string image;                                  // as given on the command line
  double seconds = 0;                                 // since this image's pull began
  const progress::ImageProgress* progress = nullptr;  // null: the daemon has not reported it
  std::optional<double> bytesPerSecond;               // null: not measured yet
};

// One line, at most `width` columns (a line that wraps would break redrawing in place).
std::string renderPullLine(const PullLineData& data, size_t width);

// Follows the images of one `snapimport pull` through successive /status snapshots: finds each
// image's entry and measures its fetch rate over the last few seconds.
class PullProgress {
 public:
  explicit PullProgress(std::vector<std::string> images);

  // The tracker's state before the pull: images it shows as finished then are an earlier pull
  // and are not shown for this one until the daemon imports them again.
  void baseline(const std::vector<progress::ImageProgress>& snapshot);
  // A snapshot taken `now` seconds after the pull began.
  void update(std::vector<progress::ImageProgress> snapshot, double now);
  // The daemon could not be asked: forget what it said, the lines show only the time.
  void clear();

  // The tracker's entry for images[index], or null.
  const progress::ImageProgress* entryFor(size_t index) const;
  std::optional<double> rateFor(size_t index) const;

  // Lines for the images being pulled: (index into images, seconds since it began).
  std::vector<std::string> lines(const std::vector<std::pair<size_t, double>>& running,
                                 size_t width) const;

 private:
  struct Sample {
    double time;
    uint64_t fetched;
  };
  std::vector<std::string> images_;
  std::vector<std::string> normalized_;                  // registry::Reference::str(), or as given
  std::set<std::pair<std::string, std::string>> stale_;  // (ref, manifest) finished before
  std::vector<progress::ImageProgress> snapshot_;
  std::map<size_t, size_t> entries_;  // image index -> snapshot_ index
  std::map<size_t, std::deque<Sample>> samples_;
};

// Bytes fetched (each layer counted up to its size) and the total compressed size.
std::pair<uint64_t, uint64_t> fetchedOfTotal(const progress::ImageProgress& image);

}  // namespace snapimport::cli
