// The registry commands' flags: --tls-verify is three-way (unset, true, false) down to the
// client options, and its help says what unset does.
#include "cli/RegistryFlags.h"

#include <gtest/gtest.h>

#include <vector>

namespace snapimport::cli {
namespace {

struct Parsed {
  EndpointFlags src, dest;
};

Parsed parse(std::vector<std::string> args) {
  CLI::App app{"test"};
  Parsed p;
  addEndpointFlags(app, p.src, "src-", "the source registry");
  addEndpointFlags(app, p.dest, "dest-", "the destination registry");
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  app.parse(reversed);  // CLI11 takes the arguments last first
  return p;
}

std::optional<bool> clientTlsVerify(const EndpointFlags& e) {
  return clientOptions(RegistryFlags{}, e).tlsVerify;
}

TEST(RegistryFlags, TlsVerifyUnsetLeavesTheRegistryDefault) {
  Parsed p = parse({});
  EXPECT_EQ(p.src.tlsVerify, std::nullopt);
  EXPECT_EQ(clientTlsVerify(p.src), std::nullopt);
  EXPECT_EQ(clientTlsVerify(p.dest), std::nullopt);
}

TEST(RegistryFlags, TlsVerifyTrueAndFalseAreForced) {
  Parsed p = parse({"--src-tls-verify=true", "--dest-tls-verify", "false"});
  EXPECT_EQ(clientTlsVerify(p.src), true);
  EXPECT_EQ(clientTlsVerify(p.dest), false);
  p = parse({"--src-tls-verify=false", "--dest-tls-verify=1"});
  EXPECT_EQ(clientTlsVerify(p.src), false);
  EXPECT_EQ(clientTlsVerify(p.dest), true);
}

TEST(RegistryFlags, TlsVerifyRejectsWhatIsNotABoolean) {
  EXPECT_THROW(parse({"--src-tls-verify=maybe"}), CLI::ParseError);
}

TEST(RegistryFlags, TlsVerifyHelpSaysWhatTheDefaultDoes) {
  CLI::App app{"test"};
  EndpointFlags e;
  addEndpointFlags(app, e);
  std::string help = app.help();
  EXPECT_NE(help.find("--tls-verify BOOL"), std::string::npos) << help;
  EXPECT_NE(help.find("also on loopback"), std::string::npos) << help;
  EXPECT_NE(help.find("default: as its hosts.toml says"), std::string::npos) << help;
  EXPECT_NE(help.find("localhost, 127.0.0.0/8 and ::1"), std::string::npos) << help;
  // Not the old claim that verification is on by default everywhere.
  EXPECT_EQ(help.find("=true"), std::string::npos) << help;
}

}  // namespace
}  // namespace snapimport::cli
