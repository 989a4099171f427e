#include "plugin/LayerPriority.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/Log.h"
#include "plugin/CpuCgroup.h"

namespace snapimport::plugin {
namespace {

constexpr int kMaxNice = 19;

int niceOf(pid_t tid) {
  errno = 0;
  int n = ::getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
  return errno == 0 ? n : 0;
}

clockid_t cpuClockOfThisThread() {
  clockid_t c;
  return ::pthread_getcpuclockid(::pthread_self(), &c) == 0 ? c : CLOCK_THREAD_CPUTIME_ID;
}

double cpuSeconds(clockid_t c) {
  timespec ts{};
  if (::clock_gettime(c, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Seconds the thread has waited on a run queue for a core (the second field of schedstat).
double runqueueSeconds(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", static_cast<int>(tid));
  FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  unsigned long long onCpu = 0, waiting = 0;
  int n = std::fscanf(f, "%llu %llu", &onCpu, &waiting);
  std::fclose(f);
  return n == 2 ? static_cast<double>(waiting) / 1e9 : 0;
}

bool setNice(pid_t tid, int nice) {
  return ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) == 0;
}

// Whether a thread of this process may be lowered and then given its nice value back: tried on
// a thread of its own, so that no thread of the daemon is left lowered when it may not.
bool canRestore(int normal) {
  bool ok = false;
  std::thread probe([&] {
    pid_t self = ::gettid();
    if (!setNice(self, std::min(normal + 1, kMaxNice))) return;
    ok = setNice(self, normal);
  });
  probe.join();
  return ok;
}

}  // namespace

std::optional<size_t> LayerPriority::favourite(const std::vector<Progress>& layers,
                                               std::optional<size_t> current) {
  constexpr double kNone = -1;
  std::vector<double> left(layers.size(), kNone);
  size_t estimates = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& p = layers[i];
    if (p.totalBytes == 0 || p.recentCpuSeconds <= 0) continue;
    uint64_t rest = p.totalBytes > p.doneBytes ? p.totalBytes - p.doneBytes : 0;
    left[i] = p.recentCpuSeconds * static_cast<double>(rest) /
              static_cast<double>(std::max<uint64_t>(p.recentBytes, 1));
    ++estimates;
  }
  if (estimates < 2) return std::nullopt;
  // How far layer i's estimate is ahead of the longest other one.
  auto lead = [&](size_t i) {
    double other = 0;
    for (size_t j = 0; j < left.size(); ++j) {
      if (j != i) other = std::max(other, left[j]);
    }
    return other > 0 ? left[i] / other : std::numeric_limits<double>::infinity();
  };
  constexpr double kStart = 1.25, kKeep = 1.05;
  if (current && *current < left.size() && left[*current] != kNone && lead(*current) >= kKeep) {
    return current;
  }
  size_t best = 0;
  for (size_t i = 1; i < left.size(); ++i) {
    if (left[i] > left[best]) best = i;
  }
  if (lead(best) >= kStart) return best;
  return std::nullopt;
}

std::shared_ptr<LayerPriority> LayerPriority::create(Options options) {
  return std::shared_ptr<LayerPriority>(new LayerPriority(options));
}

LayerPriority::LayerPriority(Options options) : options_(options) {
  normalNice_ = niceOf(::gettid());
  backgroundNice_ = std::min(normalNice_ + options_.backgroundNice, kMaxNice);
  if (options_.backgroundNice <= 0) return;
  bool own = false;
  std::string why, path;
  if (options_.ownCpuCgroup) {
    own = *options_.ownCpuCgroup;
    why = "told so";
  } else {
    CpuCgroup cg = CpuCgroup::ofThisProcess();
    own = cg.own;
    why = cg.why;
    path = cg.path;
  }
  if (!own) {
    log::info("layer priorities are off: nice values would reach beyond this service",
              {{"reason", why},
               {"hint",
                "run the daemon in a cgroup with the cpu controller (systemd: "
                "CPUAccounting=yes, as packaging/systemd/snapimport.service has)"}});
    return;
  }
  enabled_ = normalNice_ < kMaxNice && canRestore(normalNice_);
  if (!enabled_) {
    log::info(
        "layer priorities are off: this process may not raise a thread's priority back",
        {{"nice", std::to_string(normalNice_)},
         {"hint", "CAP_SYS_NICE, or RLIMIT_NICE of at least " + std::to_string(20 - normalNice_)}});
    return;
  }
  log::info("layer priorities are on",
            {{"cpu_cgroup", path}, {"background_nice", std::to_string(backgroundNice_)}});
  thread_ = std::thread([this] { run(); });
}

LayerPriority::~LayerPriority() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::unique_ptr<LayerPriority::Layer> LayerPriority::start(std::string name, uint64_t totalBytes,
                                                           const std::atomic<uint64_t>& done) {
  if (!enabled_) return nullptr;
  pid_t caller = ::gettid();
  std::unique_ptr<Layer> layer;
  {
    std::lock_guard lock(mu_);
    const uint64_t id = nextId_++;
    layer.reset(new Layer(shared_from_this(), id));
    clockid_t clock = cpuClockOfThisThread();
    running_[id] = Running{std::move(name),
                           totalBytes,
                           &done,
                           {{caller, clock, cpuSeconds(clock)}},
                           caller,
                           std::chrono::steady_clock::now(),
                           runqueueSeconds(caller),
                           &layer->waitedNanos_,
                           {{0, 0}}};
  }
  wake_.notify_all();
  return layer;
}

uint64_t LayerPriority::changes() {
  std::lock_guard lock(mu_);
  return changes_;
}

LayerPriority::Layer::~Layer() { owner_->finish(id_); }
void LayerPriority::Layer::threadStarted() {
  owner_->addThread(id_, ::gettid(), cpuClockOfThisThread());
}
void LayerPriority::Layer::threadEnding() { owner_->removeThread(id_, ::gettid()); }

void LayerPriority::addThread(uint64_t id, pid_t tid, clockid_t cpuClock) {
  std::lock_guard lock(mu_);
  auto it = running_.find(id);
  if (it == running_.end()) return;
  it->second.threads.push_back({tid, cpuClock, cpuSeconds(cpuClock)});
  // It inherited the nice value of the thread that created it: the caller's, maybe lowered.
  int inherited = niceOf(tid);
  if (inherited != normalNice_) applied_[tid] = inherited;
}

void LayerPriority::removeThread(uint64_t id, pid_t tid) {
  std::lock_guard lock(mu_);
  auto it = running_.find(id);
  if (it != running_.end()) {
    std::erase_if(it->second.threads, [&](const auto& t) { return t.tid == tid; });
  }
  // Under the lock, so no decision touches the id after this: it is reused once the thread exits.
  applied_.erase(tid);
}

void LayerPriority::finish(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = running_.find(id);
  if (it == running_.end()) return;
  for (const auto& t : it->second.threads) {
    // Pipeline threads have all ended by now; the caller is a worker that goes on to other jobs.
    if (t.tid == it->second.caller) setLocked(t.tid, normalNice_);
    applied_.erase(t.tid);
  }
  running_.erase(it);
  if (favoured_ == id) favoured_.reset();
  if (running_.size() < 2) decideLocked();  // the last one left runs at the normal priority
}

void LayerPriority::setLocked(pid_t tid, int nice) {
  auto it = applied_.find(tid);
  int now = it == applied_.end() ? normalNice_ : it->second;
  if (now == nice) return;
  if (!setNice(tid, nice)) return;  // ESRCH: it has just exited
  ++changes_;
  if (nice == normalNice_) {
    applied_.erase(tid);
  } else {
    applied_[tid] = nice;
  }
}

void LayerPriority::decideLocked() {
  std::vector<uint64_t> ids;
  std::vector<Progress> progress;
  std::optional<size_t> current;
  for (auto& [id, r] : running_) {
    if (favoured_ == id) current = ids.size();
    ids.push_back(id);
    double busiest = 0;
    for (const auto& t : r.threads) {
      double spent = cpuSeconds(t.cpuClock) - t.cpuAtStart;
      if (t.tid == r.caller) {
        double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count();
        double waited =
            static_cast<double>(r.writerWaitedNanos->load(std::memory_order_relaxed)) / 1e9;
        double queued = runqueueSeconds(t.tid) - r.callerRunqueueAtStart;
        spent = std::max(spent, wall - waited - queued);
      }
      busiest = std::max(busiest, spent);
    }
    uint64_t done = r.done->load(std::memory_order_relaxed);
    const auto& oldest = r.samples.front();
    progress.push_back({std::max(0.0, busiest - oldest.busiestCpu),
                        done > oldest.done ? done - oldest.done : 0, done, r.totalBytes});
    r.samples.push_back({busiest, done});
    if (r.samples.size() > kWindow) r.samples.erase(r.samples.begin());
  }
  auto pick = favourite(progress, current);
  std::optional<uint64_t> before = favoured_;
  favoured_.reset();
  if (pick) favoured_ = ids[*pick];
  if (favoured_ && favoured_ != before) {
    const auto& p = progress[*pick];
    log::debug(
        "layer favoured",
        {{"layer", running_.at(*favoured_).name},
         {"running", std::to_string(running_.size())},
         {"done_bytes", std::to_string(p.doneBytes)},
         {"recent_bytes", std::to_string(p.recentBytes)},
         {"recent_cpu_ms", std::to_string(static_cast<int64_t>(p.recentCpuSeconds * 1000))}});
  }
  for (const auto& [id, r] : running_) {
    int nice = !favoured_ || *favoured_ == id ? normalNice_ : backgroundNice_;
    for (const auto& t : r.threads) setLocked(t.tid, nice);
  }
}

void LayerPriority::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (running_.size() < 2) {
      wake_.wait(lock, [&] { return stopping_ || running_.size() >= 2; });
      continue;
    }
    decideLocked();
    wake_.wait_for(lock, options_.period, [&] { return stopping_; });
  }
}

}  // namespace snapimport::plugin
