#pragma once
// Image references, normalised the way docker and containerd do it (distribution/reference):
//   ubuntu                    -> docker.io/library/ubuntu:latest
//   index.docker.io/x/y       -> docker.io/x/y:latest
//   host:5000/a/b:t@sha256:.. -> the digest wins, the tag is kept only for display
// Names, tags and digests are validated before anything uses them in a URL or a path.
#include <optional>
#include <string>
#include <string_view>

#include "registry/Digest.h"

namespace snapimport::registry {

struct Reference {
  std::string domain;  // "docker.io", "127.0.0.1:5000", "[::1]:5000"
  std::string path;    // "library/ubuntu"
  std::string tag;     // empty when the reference is by digest only
  std::optional<Digest> digest;

  // Parses and normalises; with neither tag nor digest the tag becomes "latest".
  // Throws Error(Invalid) naming what is wrong.
  static Reference parse(std::string_view text);
  // A repository without tag or digest (for `tags`); throws if one is given.
  static Reference parseRepository(std::string_view text);
  // Like parse() but without adding "latest".
  static Reference parseExact(std::string_view text);

  static bool isValidTag(std::string_view tag);
  static bool isValidPath(std::string_view path);
  static bool isValidDomain(std::string_view domain);

  // "docker.io/library/ubuntu"
  std::string name() const { return domain + "/" + path; }
  // "docker.io/library/ubuntu:latest", "...@sha256:..", or both when both are set.
  std::string str() const;
  // What goes after /manifests/: the digest when there is one, else the tag.
  std::string object() const { return digest ? digest->str() : tag; }
  Reference withDigest(const Digest& d) const;
  Reference withTag(std::string t) const;
  Reference repository() const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

}  // namespace snapimport::registry
