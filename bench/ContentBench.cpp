// Measures Write and Read of one blob through snapimport's content service, the way containerd's
// content proxy drives it: Write in lock-step (one request, one response) with 1 MiB chunks, as
// containerd copies through 1 MiB buffers; Read as one server stream. Prints MiB/s for each.
//
//   content_bench --daemon PATH/TO/snapimport [--size-mib 1024] [--chunk-kib 1024] [--keep]
//       starts `snapimport serve` on a fresh root under $TMPDIR and stops it afterwards
//   content_bench --address /run/snapimport/snapimport.sock [...]
//       uses a daemon that is already running (the blob is deleted afterwards)
//
// The blob's bytes are pseudo-random (not compressible, not repeating) and are checked on the
// way back. The Write figure includes COMMIT, which verifies the digest and fsyncs the blob.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "containerd/services/content/v1/content.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
namespace contentv1 = ::containerd::services::content::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string daemon;
  std::string address;
  int64_t sizeMiB = 1024;
  int64_t chunkKiB = 1024;
  bool keep = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "content_bench: %s\n"
               "usage: content_bench (--daemon SNAPIMPORT_BIN | --address SOCKET) [--size-mib N] "
               "[--chunk-kib N] [--keep]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--daemon") {
      o.daemon = value();
    } else if (a == "--address") {
      o.address = value();
    } else if (a == "--size-mib") {
      o.sizeMiB = std::stoll(value());
    } else if (a == "--chunk-kib") {
      o.chunkKiB = std::stoll(value());
    } else if (a == "--keep") {
      o.keep = true;
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (o.daemon.empty() == o.address.empty()) usage("give exactly one of --daemon and --address");
  if (o.sizeMiB <= 0 || o.chunkKiB <= 0 || o.chunkKiB > 8192)
    usage("bad --size-mib or --chunk-kib");
  return o;
}

// Deterministic, incompressible bytes: xorshift64* keyed by the offset of each 8-byte word, so any
// chunk can be produced (and checked) on its own.
void fill(std::string& buf, int64_t offset, uint64_t seed) {
  auto* words = reinterpret_cast<uint64_t*>(buf.data());
  size_t n = buf.size() / 8;
  uint64_t base = static_cast<uint64_t>(offset) / 8;
  for (size_t i = 0; i < n; ++i) {
    uint64_t x = (base + i) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    words[i] = x * 0x2545F4914F6CDD1Dull;
  }
}

// A `snapimport serve` of our own on a fresh root; stopped (SIGTERM, then SIGKILL) on destruction.
class Daemon {
 public:
  explicit Daemon(const std::string& bin) {
    std::string tmpl = (fs::temp_directory_path() / "content-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    socket_ = (dir_ / "snapimport.sock").string();
    std::string root = (dir_ / "root").string();
    std::string log = (dir_ / "daemon.log").string();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      execl(bin.c_str(), bin.c_str(), "serve", "--root", root.c_str(), "--address", socket_.c_str(),
            static_cast<char*>(nullptr));
      std::perror("exec snapimport");
      _exit(127);
    }
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!listening()) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("daemon exited at start-up; see " + log);
      }
      if (Clock::now() > deadline) throw std::runtime_error("daemon did not listen within 30s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~Daemon() {
    if (pid_ > 0) {  // never 0 or -1: those would signal a whole group or every process
      kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 150 && waitpid(pid_, &status, WNOHANG) != pid_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (i == 149) {
          kill(pid_, SIGKILL);
          waitpid(pid_, &status, 0);
        }
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }

 private:
  bool listening() const {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    close(fd);
    return ok;
  }
  fs::path dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

// CPU seconds (user + system, all threads) a process has used so far; 0 if unknown. On a
// shared 2-core machine wall-clock rates swing with the load, CPU seconds per GiB do not.
double cpuSeconds(pid_t pid) {
  std::string path = "/proc/" + (pid > 0 ? std::to_string(pid) : std::string("self")) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');  // the command name may hold spaces
  if (!p) return 0;
  unsigned long utime = 0, stime = 0;
  // Fields after the name: state(3) ... utime(14) stime(15).
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) !=
      2) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct CpuMark {
  double client, daemon;
};

double mibps(int64_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / (1 << 20) / std::chrono::duration<double>(d).count();
}

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

void check(const grpc::Status& s, const std::string& what) {
  if (!s.ok()) {
    throw std::runtime_error(what + " failed: " + std::to_string(s.error_code()) + " " +
                             s.error_message());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse(argc, argv);
  try {
    std::optional<Daemon> daemon;
    std::string address = opt.address;
    auto mark = [&] { return CpuMark{cpuSeconds(0), daemon ? cpuSeconds(daemon->pid()) : 0}; };
    if (!opt.daemon.empty()) {
      daemon.emplace(opt.daemon);
      address = daemon->socket();
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    args.SetMaxSendMessageSize(16 << 20);
    auto channel =
        grpc::CreateCustomChannel("unix:" + address, grpc::InsecureChannelCredentials(), args);
    auto stub = contentv1::Content::NewStub(channel);

    const int64_t size = opt.sizeMiB << 20;
    const int64_t chunk = opt.chunkKiB << 10;
    const uint64_t seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
    const std::string ref = "content-bench/" + std::to_string(seed);

    // --- Write ---
    std::string digest;
    Clock::duration streamTime{}, writeTime{};
    CpuMark w0 = mark();
    {
      grpc::ClientContext ctx;
      auto stream = stub->Write(&ctx);
      contentv1::WriteContentRequest req;
      contentv1::WriteContentResponse resp;
      auto exchange = [&](const char* what) {
        if (!stream->Write(req) || !stream->Read(&resp)) {
          check(stream->Finish(), std::string("Write ") + what);
          throw std::runtime_error(std::string("Write ") + what + ": stream ended");
        }
      };
      auto start = Clock::now();
      req.set_action(contentv1::STAT);
      req.set_ref(ref);
      req.set_total(size);
      exchange("STAT");
      req.Clear();
      req.set_action(contentv1::WRITE);
      std::string* data = req.mutable_data();
      for (int64_t off = 0; off < size; off += chunk) {
        data->resize(static_cast<size_t>(std::min(chunk, size - off)));
        fill(*data, off, seed);
        req.set_offset(off);
        exchange("WRITE");
        if (resp.offset() != off + static_cast<int64_t>(data->size())) {
          throw std::runtime_error("WRITE at " + std::to_string(off) + " answered offset " +
                                   std::to_string(resp.offset()));
        }
      }
      streamTime = Clock::now() - start;
      req.Clear();
      req.set_action(contentv1::COMMIT);
      req.set_offset(size);
      req.set_total(size);
      exchange("COMMIT");
      writeTime = Clock::now() - start;
      digest = resp.digest();
      stream->WritesDone();
      check(stream->Finish(), "Write");
    }

    CpuMark w1 = mark();

    // --- Read ---
    Clock::duration readTime{};
    Clock::duration verifyTime{};
    int64_t messages = 0;
    {
      grpc::ClientContext ctx;
      contentv1::ReadContentRequest req;
      req.set_digest(digest);
      auto start = Clock::now();
      auto reader = stub->Read(&ctx, req);
      contentv1::ReadContentResponse resp;
      std::string expect;
      int64_t got = 0;
      bool mismatch = false;
      while (reader->Read(&resp)) {
        if (resp.offset() != got) throw std::runtime_error("Read chunk at unexpected offset");
        // Checking costs client CPU on a 2-core machine; keep it off the clock.
        auto v0 = Clock::now();
        expect.resize(resp.data().size());
        if (got % 8 == 0) {
          fill(expect, got, seed);
          mismatch |=
              std::memcmp(expect.data(), resp.data().data(), expect.size() & ~size_t{7}) != 0;
        }
        verifyTime += Clock::now() - v0;
        got += static_cast<int64_t>(resp.data().size());
        ++messages;
      }
      check(reader->Finish(), "Read");
      readTime = Clock::now() - start - verifyTime;
      if (got != size) throw std::runtime_error("Read returned " + std::to_string(got) + " bytes");
      if (mismatch) throw std::runtime_error("Read returned different bytes than were written");
    }

    CpuMark r1 = mark();

    if (!opt.keep) {
      grpc::ClientContext ctx;
      contentv1::DeleteContentRequest req;
      req.set_digest(digest);
      google::protobuf::Empty empty;
      check(stub->Delete(&ctx, req, &empty), "Delete");
    }

    std::printf("blob      %lld MiB, %s\n", static_cast<long long>(opt.sizeMiB), digest.c_str());
    std::printf(
        "write     %8.1f MiB/s  (%.2f s incl. COMMIT; %lld KiB lock-step WRITEs at %.1f MiB/s, "
        "COMMIT %.2f s)\n",
        mibps(size, writeTime), secs(writeTime), static_cast<long long>(opt.chunkKiB),
        mibps(size, streamTime), secs(writeTime - streamTime));
    std::printf("read      %8.1f MiB/s  (%.2f s, %lld messages)\n", mibps(size, readTime),
                secs(readTime), static_cast<long long>(messages));
    if (daemon) {
      double gib = static_cast<double>(size) / (1 << 30);
      double verify = secs(verifyTime);
      std::printf(
          "cpu/GiB   write: daemon %.2f s, client %.2f s;  read: daemon %.2f s, client %.2f s\n",
          (w1.daemon - w0.daemon) / gib, (w1.client - w0.client) / gib,
          (r1.daemon - w1.daemon) / gib, (r1.client - w1.client - verify) / gib);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "content_bench: %s\n", e.what());
    return 1;
  }
}
