#pragma once
#include <filesystem>

#include "Snapshot.h"

namespace snapimport::store {

// Walks a tree without following symlinks and counts every (device, inode) once:
// size = sum of st_blocks * 512, inodes = distinct inodes (the root included), as containerd's
// continuity fs.DiskUsage does.
Usage diskUsage(const std::filesystem::path& root);

}  // namespace snapimport::store
