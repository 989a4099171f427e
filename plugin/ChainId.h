#pragma once
// OCI chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
// containerd names committed layer snapshots by them, so checking a computed chain ID against the
// one containerd asks for proves the layer's diff_id matches the image config it resolved.
#include <string>
#include <vector>

namespace snapimport::plugin {

std::string chainIdOf(const std::string& parentChainId, const std::string& diffId);
std::vector<std::string> chainIds(const std::vector<std::string>& diffIds);
// "sha256:" + hex of SHA-256 over `data`.
std::string sha256Digest(const std::string& data);

}  // namespace snapimport::plugin
