#pragma once
// kubelet's CredentialProviderConfig (kubelet.config.k8s.io/v1, also v1beta1 and v1alpha1, which
// have the same fields), read from the file kubelet gets as --image-credential-provider-config:
// YAML or JSON, or a directory of *.json, *.yaml and *.yml files merged in lexicographic order, as
// kubelet does. Decoding is strict like kubelet's: unknown fields, wrong types and missing required
// fields are errors that name the file and the field ("providers[1].matchImages[0]").
//
//   apiVersion: kubelet.config.k8s.io/v1
//   kind: CredentialProviderConfig
//   providers:
//   - name: ecr-credential-provider        # an executable in the plugin directory
//     matchImages: ["*.dkr.ecr.*.amazonaws.com", "registry.io:8080/path"]
//     defaultCacheDuration: 12h            # Go duration syntax
//     apiVersion: credentialprovider.kubelet.k8s.io/v1
//     args: [get-credentials]
//     env: [{name: AWS_PROFILE, value: nodes}]
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace snapimport::registry {

struct CredentialProviderSpec {
  std::string name;                      // the executable's file name in the plugin directory
  std::vector<std::string> matchImages;  // patterns, see CredentialProviderMatch.h
  std::chrono::nanoseconds defaultCacheDuration{0};
  std::string apiVersion;  // of the request and the response
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // added to the daemon's environment
  std::string source;                                    // the file it was read from, for messages
};

struct CredentialProviderConfig {
  std::vector<CredentialProviderSpec> providers;  // in file order (the order they are consulted)

  // Reads a file, or every *.json/*.yaml/*.yml file of a directory in lexicographic order.
  // Throws Error(Invalid) naming the file and the field, Error(Io) when a file cannot be read.
  static CredentialProviderConfig load(const std::string& path);
  // Decodes and validates one document (YAML, or JSON when it starts with '{').
  static CredentialProviderConfig parse(std::string_view text, const std::string& sourceName);
};

// The request and response apiVersions a provider may name (kubelet's list).
bool isSupportedProviderApiVersion(std::string_view apiVersion);

// Go's time.ParseDuration ("300ms", "1.5h", "2h45m", "0"; units ns, us, µs, ms, s, m, h), which
// is what metav1.Duration fields hold. Returns false for anything Go would reject.
bool parseGoDuration(std::string_view text, std::chrono::nanoseconds& out);

}  // namespace snapimport::registry
