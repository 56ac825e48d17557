#include "cli.h"

#include <doctest/doctest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "exit_code.h"

namespace pgboot {
namespace {

Status Noop(const Invocation&, const Config&) { return Status::Ok(); }

// The real table's shapes, with handlers that do nothing: the rules are the parser's.
const CommandSpec kTestCommands[] = {
    {"run", {}, {}, nullptr, true, Noop, "run APP"},
    {"wait", {}, {}, nullptr, false, Noop, "wait"},
    {"migrate", {"up"}, {"target", "dry-run"}, nullptr, false, Noop, "migrate\nsecond line"},
    {"status", {"info"}, {"output", "fail-on-pending", "history"}, nullptr, false, Noop, "status"},
    {"rollback",
     {"down"},
     {"steps", "to", "batch", "dry-run", "allow-production"},
     nullptr,
     false,
     Noop,
     "rollback"},
    {"baseline", {}, {"force"}, "V", false, Noop, "baseline"},
};

Result<Invocation> Parse(std::initializer_list<const char*> args) {
  std::vector<std::string> storage = {"pgboot"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), kTestCommands);
}

// The usage error's message ("" when parsing succeeded); every failure must be exit 2.
std::string UsageError(std::initializer_list<const char*> args) {
  auto r = Parse(args);
  if (r.ok()) return "";
  CHECK(ExitCodeFor(r.status()) == kExitUsage);
  return r.status().message();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("the first command is the default, and it needs an application after --") {
  auto r = Parse({"--", "app", "--help", "--wait-timeout"});
  REQUIRE(r.ok());
  CHECK(r->command == "run");
  CHECK(r->app == std::vector<std::string>{"app", "--help", "--wait-timeout"});  // not parsed
  CHECK_FALSE(r->help);
  CHECK(Contains(UsageError({}), "no application given"));
  CHECK(Contains(UsageError({"--"}), "no application given"));
  CHECK(Contains(UsageError({"run", "--"}), "no application given"));
}

TEST_CASE("commands by name or alias; unknown words say how to run an application") {
  CHECK(Parse({"up"})->command == "migrate");
  CHECK(Parse({"info"})->command == "status");
  CHECK(Parse({"down"})->command == "rollback");
  CHECK(Contains(UsageError({"sh", "script.sh"}), "pgboot -- sh ..."));
  // A boolean flag's value given apart from it reads as a command.
  CHECK(Contains(UsageError({"--run-migrations", "true", "--", "app"}), "--run-migrations=true"));
  CHECK(FindCommand(kTestCommands, "down")->name == std::string("rollback"));
  CHECK(FindCommand(kTestCommands, "nope") == nullptr);
}

TEST_CASE("a command accepts its own options only, anywhere before --") {
  CHECK(Contains(UsageError({"wait", "--dry-run"}), "--dry-run is not an option of 'wait'"));
  CHECK(Contains(UsageError({"--dry-run", "wait"}), "not an option of 'wait'"));
  CHECK(Contains(UsageError({"--target", "3", "--", "true"}), "not an option of 'run'"));
  auto r = Parse({"--dry-run", "migrate", "--target", "7"});
  REQUIRE(r.ok());
  CHECK(r->dry_run);
  CHECK(r->target == "7");
  CHECK(Contains(UsageError({"migrate", "--no-such-option"}), "no-such-option"));
}

TEST_CASE("operands: exactly the one a command names, none elsewhere; -- only to run an app") {
  CHECK(Parse({"baseline", "5"})->operands == std::vector<std::string>{"5"});
  CHECK(Contains(UsageError({"baseline"}), "takes exactly one argument: pgboot baseline V"));
  CHECK(Contains(UsageError({"baseline", "5", "6"}), "takes exactly one argument"));
  CHECK(Contains(UsageError({"wait", "extra"}), "unexpected argument 'extra' for 'wait'"));
  CHECK(Contains(UsageError({"wait", "--", "true"}), "'wait' runs no application"));
}

TEST_CASE("settings given as flags, bare booleans meaning true") {
  auto r = Parse({"wait", "--wait-timeout", "5s", "--run-migrations", "--config", "x.toml"});
  REQUIRE(r.ok());
  CHECK(r->flags.at("wait-timeout") == "5s");
  CHECK(r->flags.at("run-migrations") == "true");
  CHECK(r->flags.at("config") == "x.toml");
  CHECK(Parse({"wait", "--run-migrations=false"})->flags.at("run-migrations") == "false");
  CHECK_FALSE(Parse({"wait"})->flags.count("wait-timeout"));
}

TEST_CASE("command option values are checked") {
  CHECK(*Parse({"rollback", "--steps", "2"})->steps == 2);
  for (const char* bad : {"0", "-1", "x", "1.5", "9999999999"}) {
    INFO(bad);
    CHECK(Contains(UsageError({"rollback", "--steps", bad}), "--steps must be a whole number"));
  }
  CHECK(Contains(UsageError({"rollback", "--steps", "1", "--batch"}), "at most one of"));
  CHECK(Contains(UsageError({"rollback", "--to", "3", "--batch"}), "at most one of"));
  CHECK(*Parse({"rollback", "--to", "3"})->to == "3");
  CHECK(Parse({"status", "--output", "json"})->output == "json");
  CHECK(Contains(UsageError({"status", "--output", "yaml"}), "--output must be text or json"));
  CHECK(Contains(UsageError({"migrate", "--target", ""}), "--target needs a version"));
}

TEST_CASE("--help and --version skip the command's rules") {
  auto help = Parse({"baseline", "--help"});
  REQUIRE(help.ok());
  CHECK(help->help);
  CHECK(help->command == "baseline");
  auto version = Parse({"--version"});  // no application needed
  REQUIRE(version.ok());
  CHECK(version->version);
  // The version, then the commit the build was given (entrypoint/build_info.h).
  const std::string text = VersionText();
  CHECK(text.rfind("pgboot " PGBOOT_VERSION " (commit ", 0) == 0);
  CHECK(text.size() > std::string("pgboot " PGBOOT_VERSION " (commit )\n").size());
  CHECK(text.substr(text.size() - 2) == ")\n");
}

TEST_CASE("--help is written from the tables") {
  const std::string help = HelpText(kTestCommands);
  CHECK(Contains(help, "\n  run (default)   run APP\n"));
  CHECK(Contains(help, "\n  migrate, up     migrate\n                  second line\n"));
  CHECK(Contains(help, "\n  rollback, down  rollback\n"));
  CHECK(Contains(help, "\n  baseline V      baseline\n"));
  // Each command option names the commands that accept it.
  CHECK(Contains(help, "migrate, rollback: print the SQL"));
  CHECK(Contains(help, "status: exit 1 when a migration is pending"));
  CHECK(Contains(help, "--wait-timeout"));  // the settings table
  CHECK(Contains(help, "PGBOOT_WAIT_TIMEOUT"));
}

}  // namespace pgboot
