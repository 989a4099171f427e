#pragma once
#include <CLI/CLI.hpp>

namespace snapimport::cli {

// `snapimport pull [--image-endpoint unix:///run/containerd/containerd.sock] [--file LIST]
// IMAGE...` Pre-pulls images through containerd's CRI ImageService (namespace k8s.io), so kubelet
// sees them.
void addPullCommand(CLI::App& app);

}  // namespace snapimport::cli
