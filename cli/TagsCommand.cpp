#include "TagsCommand.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "RegistryFlags.h"
#include "registry/Client.h"

namespace snapimport::cli {
namespace {

struct TagsFlags {
  std::string repo;
  int pageSize = 0;
  EndpointFlags endpoint;
  RegistryFlags registry;
};

int runTags(const TagsFlags& f) {
  if (!applyLogLevel(f.registry)) return 2;
  try {
    if (!f.repo.starts_with("docker://")) {
      std::cerr << "snapimport tags " << f.repo << ": want docker://REPOSITORY\n";
      return 2;
    }
    auto repo = registry::Reference::parseRepository(f.repo.substr(9));
    registry::Client client(clientOptions(f.registry, f.endpoint));
    nlohmann::ordered_json out{{"Repository", repo.name()},
                               {"Tags", client.listTags(repo, f.pageSize)}};
    std::cout << out.dump(4) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "snapimport tags " << f.repo << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

void addTagsCommand(CLI::App& app) {
  auto flags = std::make_shared<TagsFlags>();
  auto* cmd = app.add_subcommand("tags", "list a repository's tags (all pages)");
  cmd->add_option("REPOSITORY", flags->repo, "docker://REPOSITORY")->required();
  cmd->add_option("--page-size", flags->pageSize, "tags per request (default: the registry's)")
      ->check(CLI::Range(1, 10000));
  addEndpointFlags(*cmd, flags->endpoint);
  addRegistryFlags(*cmd, flags->registry);
  cmd->callback([flags] {
    int rc = runTags(*flags);
    if (rc != 0) std::exit(rc);
  });
}

}  // namespace snapimport::cli
