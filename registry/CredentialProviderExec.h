#pragma once
// Runs one credential provider plugin as kubelet does (`ENV=... <binDir>/<name> args... <<request`)
// with what a daemon needs around it: the plugin runs in its own process group, which is killed
// when the timeout passes; stdout is capped; only the tail of stderr is kept; no descriptor of the
// daemon leaks into the plugin; signal dispositions and the signal mask are reset for it.
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace snapimport::registry {

struct PluginExecRequest {
  std::string program;            // absolute path
  std::vector<std::string> args;  // argv[1...]
  // Set over the daemon's own environment (a name given here replaces the daemon's value).
  std::vector<std::pair<std::string, std::string>> env;
  std::string input;  // written to stdin, which is then closed
  std::chrono::milliseconds timeout{10'000};
  size_t maxOutput = 1 << 20;  // more on stdout than this stops the plugin
  size_t stderrTail = 2048;    // the last bytes of stderr kept for messages
};

struct PluginExecResult {
  bool timedOut = false;
  bool outputTooLarge = false;
  int exitStatus = -1;  // when it exited
  int signal = 0;       // when a signal ended it (SIGKILL after a timeout, too)
  std::string output;   // stdout, at most maxOutput bytes
  std::string errorTail;
  std::chrono::milliseconds elapsed{0};

  bool succeeded() const { return !timedOut && !outputTooLarge && signal == 0 && exitStatus == 0; }
};

// Throws Error(Io) when the plugin cannot be started at all.
PluginExecResult runPlugin(const PluginExecRequest& request);

// The kept stderr as one printable line (control bytes become spaces, runs of blanks collapse,
// at most `max` characters, the end kept), for a log message.
std::string printableTail(const std::string& text, size_t max = 300);

}  // namespace snapimport::registry
