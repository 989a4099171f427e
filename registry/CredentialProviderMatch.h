#pragma once
// How kubelet matches images against a provider's matchImages and against the auth keys of a
// CredentialProviderResponse (k8s.io/kubernetes/pkg/credentialprovider URLsMatchStr), so a
// CredentialProviderConfig written for kubelet selects the same plugins here:
//
//   - pattern and image are scheme-less URLs: host[:port][/path];
//   - the hosts have the same number of dot-separated labels, and each label of the pattern is a
//     glob for the image's label (`*` matches within ONE label: *.k8s.io matches a.k8s.io, not
//     a.b.k8s.io nor k8s.io; k8s.*.io, *-good.k8s.io and k8s.* work too);
//   - the ports are equal: a pattern without a port matches only images without one;
//   - the pattern's path is a prefix of the image's path, compared as strings (so reg.io/team
//     matches reg.io/team/app and also reg.io/teamster/app, exactly as kubelet does).
//
// The image is the repository kubelet would send: host[:port]/path, without tag or digest.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snapimport::registry {

bool imageMatches(std::string_view pattern, std::string_view image);

// Why kubelet would refuse `pattern` as a matchImages entry (empty, spaces or control characters,
// a port that is not a number), or "" when it is acceptable.
std::string imagePatternProblem(std::string_view pattern);

// The registry part of an image (host[:port]): kubelet's cache key for cacheKeyType Registry.
std::string imageRegistry(std::string_view image);

// Of a response's auth keys, the index of the one kubelet tries first for `image`, or nullopt
// when none matches. Keys may carry a scheme and a /v1/ or /v2/ path, which mean the host alone
// (docker's config.json habits, as kubelet's keyring accepts them). kubelet keeps every matching
// key and tries them in reverse lexicographic order; the first is the most specific one: a longer
// path before its prefix, a literal label before a wildcard. An "index.docker.io" key also serves
// Docker Hub images, as in kubelet.
std::optional<size_t> preferredAuthKey(const std::vector<std::string>& keys,
                                       std::string_view image);

}  // namespace snapimport::registry
