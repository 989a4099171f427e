// `snapimport --help` and every subcommand's help read alike: descriptions start lower-case
// (an acronym or a literal such as TOML, CRI, USER:PASSWORD, docker:// stays as it is) and end
// without a period, as git's and ctr's do.
#include <gtest/gtest.h>

#include <cctype>
#include <functional>

#include "cli/ConfigCommand.h"
#include "cli/CopyCommand.h"
#include "cli/InspectCommand.h"
#include "cli/PullCommand.h"
#include "cli/ServeCommand.h"
#include "cli/StatusCommand.h"
#include "cli/TagsCommand.h"
#include "cli/UnpackCommand.h"

namespace snapimport::cli {
namespace {

// The first word is capitalised like a sentence: one upper-case letter, then lower-case ones.
bool sentenceCase(const std::string& text) {
  size_t end = text.find_first_of(" ,:(");
  std::string word = text.substr(0, end);
  if (word.size() < 2 || !std::isupper(static_cast<unsigned char>(word[0]))) return false;
  for (size_t i = 1; i < word.size(); ++i)
    if (!std::islower(static_cast<unsigned char>(word[i]))) return false;
  return true;
}

void check(const std::string& where, const std::string& text) {
  if (text.empty()) return;
  EXPECT_FALSE(sentenceCase(text)) << where << ": \"" << text << "\" starts capitalised";
  EXPECT_NE(text.back(), '.') << where << ": \"" << text << "\" ends with a period";
}

TEST(HelpText, SubcommandsAndOptionsStartLowerCaseWithoutAFinalPeriod) {
  CLI::App app{"snapimport"};
  addServeCommand(app);
  addUnpackCommand(app);
  addPullCommand(app);
  addConfigCommand(app);
  addStatusCommand(app);
  addCopyCommand(app);
  addInspectCommand(app);
  addTagsCommand(app);
  size_t checked = 0;
  std::function<void(const CLI::App&, const std::string&)> walk = [&](const CLI::App& cmd,
                                                                      const std::string& path) {
    for (const CLI::App* sub : cmd.get_subcommands([](const CLI::App*) { return true; })) {
      const std::string subPath = path + " " + sub->get_name();
      check(subPath, sub->get_description());
      ++checked;
      for (const CLI::Option* opt : sub->get_options()) {
        if (opt->get_name() == "--help") continue;  // CLI11's own, worded by main()
        check(subPath + " " + opt->get_name(), opt->get_description());
        ++checked;
      }
      walk(*sub, subPath);
    }
  };
  walk(app, "snapimport");
  EXPECT_GT(checked, 60u) << "every subcommand and option was looked at";
}

TEST(HelpText, TheCheckRecognisesSentenceCase) {
  EXPECT_TRUE(sentenceCase("Print the default config"));
  EXPECT_TRUE(sentenceCase("State directory (default x)"));
  EXPECT_FALSE(sentenceCase("print the default config"));
  EXPECT_FALSE(sentenceCase("TOML config file"));
  EXPECT_FALSE(sentenceCase("USER:PASSWORD for the registry"));
  EXPECT_FALSE(sentenceCase("OS/ARCH[/VARIANT] to pick"));
}

}  // namespace
}  // namespace snapimport::cli
