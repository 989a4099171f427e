// snapimport: the daemon (`serve`) and, as later issues land, the node-side commands.
#include <CLI/CLI.hpp>

#include "ConfigCommand.h"
#include "CopyCommand.h"
#include "InspectCommand.h"
#include "PullCommand.h"
#include "ServeCommand.h"
#include "StatusCommand.h"
#include "TagsCommand.h"
#include "UnpackCommand.h"

int main(int argc, char** argv) {
  CLI::App app{
      "snapimport: containerd snapshotter and content store that imports images fast and safely"};
  app.require_subcommand(1);
  // Help text starts lower-case without a final period, as git's and ctr's do; subcommands copy
  // the help flag (and its text) from their parent when they are added.
  app.set_help_flag("-h,--help", "print this help and exit");
  app.set_version_flag("--version", std::string("snapimport ") + SNAPIMPORT_VERSION,
                       "print the version and exit");
  snapimport::cli::addServeCommand(app);
  snapimport::cli::addUnpackCommand(app);
  snapimport::cli::addPullCommand(app);
  snapimport::cli::addConfigCommand(app);
  snapimport::cli::addStatusCommand(app);
  snapimport::cli::addCopyCommand(app);
  snapimport::cli::addInspectCommand(app);
  snapimport::cli::addTagsCommand(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
