#include "InspectCommand.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "RegistryFlags.h"
#include "registry/Error.h"
#include "registry/ImageTransport.h"

namespace snapimport::cli {
namespace {

struct InspectFlags {
  std::string image;
  bool raw = false;
  bool config = false;
  std::string platform;
  EndpointFlags endpoint;
  RegistryFlags registry;
};

int runInspect(const InspectFlags& f) {
  if (!applyLogLevel(f.registry)) return 2;
  try {
    registry::EndpointOptions eo{clientOptions(f.registry, f.endpoint)};
    auto src = registry::openSource(f.image, eo);
    registry::ManifestBlob top = src->topManifest();
    if (f.raw) {
      std::cout << top.bytes;
      return 0;
    }
    registry::Platform platform =
        f.platform.empty() ? registry::Platform::host() : registry::Platform::parse(f.platform);
    registry::ManifestBlob m = top;
    for (int depth = 0; registry::mediatype::isIndex(m.mediaType); ++depth) {
      if (depth > 4) throw registry::Error(registry::ErrorKind::Invalid, "indexes nested too deep");
      m = src->manifest(registry::selectPlatform(registry::parseIndex(m.bytes, src->describe()),
                                                 platform, src->describe()));
    }
    registry::ImageManifest im = registry::parseManifest(m.bytes, src->describe());
    std::string configBytes;
    {
      auto r = src->blob(im.config, registry::BlobCheck::SizeAndDigest);
      if (im.config.size > (16 << 20))
        throw registry::Error(registry::ErrorKind::Invalid, "config larger than 16 MiB");
      char buf[65536];
      while (size_t n = r->read(buf, sizeof buf)) configBytes.append(buf, n);
    }
    if (f.config) {
      std::cout << configBytes << "\n";
      return 0;
    }
    nlohmann::json cfg = nlohmann::json::parse(configBytes, nullptr, false);
    if (!cfg.is_object()) cfg = nlohmann::json::object();
    nlohmann::ordered_json out;
    std::string name = f.image.starts_with("docker://")
                           ? registry::Reference::parse(f.image.substr(9)).name()
                           : src->describe();
    out["Name"] = name;
    out["Digest"] = top.digest.str();
    out["MediaType"] = top.mediaType;
    if (top.digest != m.digest) out["ManifestDigest"] = m.digest.str();
    out["Created"] = cfg.value("created", "");
    nlohmann::json cc = cfg.contains("config") && cfg["config"].is_object()
                            ? cfg["config"]
                            : nlohmann::json::object();
    out["Labels"] = cc.contains("Labels") ? cc["Labels"] : nlohmann::json(nullptr);
    out["Architecture"] = cfg.value("architecture", "");
    out["Os"] = cfg.value("os", "");
    if (cfg.contains("variant")) out["Variant"] = cfg["variant"];
    out["Layers"] = nlohmann::json::array();
    out["LayersData"] = nlohmann::json::array();
    for (const auto& l : im.layers) {
      out["Layers"].push_back(l.digest.str());
      out["LayersData"].push_back(
          {{"MIMEType", l.mediaType}, {"Digest", l.digest.str()}, {"Size", l.size}});
    }
    out["Env"] = cc.contains("Env") ? cc["Env"] : nlohmann::json(nullptr);
    std::cout << out.dump(4) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "snapimport inspect " << f.image << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

void addInspectCommand(CLI::App& app) {
  auto flags = std::make_shared<InspectFlags>();
  auto* cmd = app.add_subcommand("inspect", "show an image's manifest, config and layers");
  cmd->add_option("IMAGE", flags->image, "docker://REF (also oci:, docker-archive:, dir:)")
      ->required();
  auto* raw = cmd->add_flag("--raw", flags->raw, "print the manifest or index exactly as stored");
  cmd->add_flag("--config", flags->config, "print the image config")->excludes(raw);
  cmd->add_option("--platform", flags->platform,
                  "OS/ARCH[/VARIANT] to pick from an index (default: this machine)");
  addEndpointFlags(*cmd, flags->endpoint);
  addRegistryFlags(*cmd, flags->registry);
  cmd->callback([flags] {
    int rc = runInspect(*flags);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace snapimport::cli
