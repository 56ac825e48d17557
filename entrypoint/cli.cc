#include "cli.h"

#include <cxxopts.hpp>
#include <map>
#include <set>

namespace pgboot {
namespace {

// Canonical command -> the command options it accepts.
const std::map<std::string, std::set<std::string>>& CommandOptions() {
  static const std::map<std::string, std::set<std::string>> m = {
      {"run", {}},
      {"wait", {}},
      {"migrate", {"target", "dry-run"}},
      {"status", {"output", "fail-on-pending", "history"}},
      {"validate", {}},
      {"rollback", {"steps", "to", "batch", "dry-run", "allow-production"}},
      {"repair", {"yes"}},
      {"baseline", {"force"}},
      {"new", {}},
      {"doctor", {"output"}},
      {"version", {}},
  };
  return m;
}

const std::map<std::string, std::string> kAliases = {
    {"up", "migrate"}, {"info", "status"}, {"down", "rollback"}};

const char* kCommandOptionNames[] = {"target",           "dry-run", "output", "fail-on-pending",
                                     "history",          "steps",   "to",     "batch",
                                     "allow-production", "yes",     "force"};

cxxopts::Options BuildOptions() {
  cxxopts::Options o("pgboot", "");
  o.custom_help("[OPTIONS] [COMMAND] [COMMAND OPTIONS] [-- APP [ARGS...]]");
  o.positional_help("");
  o.add_options("Global")("h,help", "Show this help and exit")("version",
                                                               "Print the version and exit")(
      "config", "TOML configuration file (env PGBOOT_CONFIG; default ./pgboot.toml if present)",
      cxxopts::value<std::string>());
  for (const SettingSpec& s : SettingSpecs()) {
    if (!s.flag) continue;
    std::string help = s.help;
    help += std::string(" (env ") + s.env;
    if (s.default_value[0] != '\0') help += std::string(", default ") + s.default_value;
    help += ")";
    auto value = cxxopts::value<std::string>();
    if (s.target.kind == SettingKind::kBool) value->implicit_value("true");
    o.add_options("Global")(s.flag, help, value);
  }
  o.add_options("Command")("target", "migrate: apply up to and including version V",
                           cxxopts::value<std::string>())(
      "dry-run", "migrate, rollback: print the SQL that would run; change nothing")(
      "output", "status, doctor: text or json", cxxopts::value<std::string>())(
      "fail-on-pending", "status: exit 1 when a migration is pending")(
      "history", "status: list the audit log, newest first")(
      "steps", "rollback: the N highest applied versions", cxxopts::value<std::string>())(
      "to", "rollback: every applied version above V (V stays)", cxxopts::value<std::string>())(
      "batch", "rollback: every version of the newest batch")(
      "allow-production", "rollback: proceed although PGBOOT_ENV=production")(
      "yes", "repair: do it (without --yes, only print the plan)")(
      "force", "baseline: even when history has rows");
  o.add_options("Positional")("positional", "", cxxopts::value<std::vector<std::string>>());
  o.parse_positional({"positional"});
  return o;
}

}  // namespace

std::string HelpText() {
  cxxopts::Options o = BuildOptions();
  std::string text = o.help({"Global", "Command"});
  return "pgboot " PGBOOT_VERSION
         " - wait for PostgreSQL, migrate under a lock, then exec the app\n\n"
         "Usage:\n"
         "  pgboot [OPTIONS] [COMMAND] [COMMAND OPTIONS] [-- APP [ARGS...]]\n\n"
         "Commands:\n"
         "  run (default)   wait; migrate if RUN_MIGRATIONS is true; then exec APP (after --)\n"
         "  wait            wait until the database accepts the login, then exit 0\n"
         "  migrate, up     wait, then apply pending migrations [--target V] [--dry-run]\n"
         "  status, info    list migrations and their state [--output json] [--fail-on-pending]\n"
         "                  [--history]\n"
         "  validate        compare migration files with the history table (exit 6 on findings)\n"
         "  rollback, down  run down sections [--steps N | --to V | --batch] [--dry-run]\n"
         "                  [--allow-production]\n"
         "  repair          accept current checksums, clear failed rows [--yes]\n"
         "  baseline V      mark every migration <= V applied without running it [--force]\n"
         "  new NAME        create <UTC timestamp>_NAME.sql\n"
         "  doctor          preflight report [--output json]\n"
         "  version         print the version\n" +
         text.substr(text.find('\n') + 1) +
         "\nExit codes: 0 ok, 1 internal error/pending/findings, 2 usage or configuration,\n"
         "3 database not ready, 4 fatal connection error, 5 migration SQL failed,\n"
         "6 validation or precondition failed, 7 lock timeout, 8 invalid migration files,\n"
         "126/127 APP not executable/not found, 128+N ended by signal N.\n";
}

Result<Invocation> ParseCommandLine(int argc, char** argv) {
  Invocation inv;
  // Split at the first `--`: nothing after it is parsed.
  std::vector<char*> head;
  int i = 0;
  for (; i < argc; ++i) {
    if (i > 0 && std::string(argv[i]) == "--") break;
    head.push_back(argv[i]);
  }
  const bool has_dashdash = i < argc;
  for (int j = i + 1; j < argc; ++j) inv.app.emplace_back(argv[j]);

  cxxopts::Options o = BuildOptions();
  cxxopts::ParseResult r;
  try {
    r = o.parse(static_cast<int>(head.size()), head.data());
  } catch (const cxxopts::exceptions::exception& e) {
    return Status::Usage(std::string(e.what()) + " (see pgboot --help)");
  }
  inv.help = r.count("help") > 0;
  inv.version = r.count("version") > 0;
  if (r.count("config")) inv.flags["config"] = r["config"].as<std::string>();
  for (const SettingSpec& s : SettingSpecs()) {
    if (s.flag && r.count(s.flag)) inv.flags[s.flag] = r[s.flag].as<std::string>();
  }

  std::vector<std::string> positional;
  if (r.count("positional")) positional = r["positional"].as<std::vector<std::string>>();
  if (!positional.empty()) {
    std::string cmd = positional.front();
    if (auto a = kAliases.find(cmd); a != kAliases.end()) cmd = a->second;
    if (!CommandOptions().count(cmd) && ParseBool(cmd).ok()) {
      return Status::Usage("unknown command '" + positional.front() +
                           "'; a boolean flag takes its value with '=', e.g. "
                           "--run-migrations=" +
                           positional.front());
    }
    if (!CommandOptions().count(cmd)) {
      return Status::Usage("unknown command '" + positional.front() +
                           "'; to run an application, put it after --: pgboot -- " +
                           positional.front() + " ...");
    }
    inv.command = cmd;
    inv.operands.assign(positional.begin() + 1, positional.end());
  }
  if (inv.help || inv.version) return inv;

  const auto& allowed = CommandOptions().at(inv.command);
  for (const char* name : kCommandOptionNames) {
    if (r.count(name) && !allowed.count(name)) {
      return Status::Usage("--" + std::string(name) + " is not an option of '" + inv.command +
                           "' (see pgboot --help)");
    }
  }

  size_t want_operands = (inv.command == "baseline" || inv.command == "new") ? 1 : 0;
  if (inv.operands.size() != want_operands) {
    if (want_operands == 1) {
      return Status::Usage("'" + inv.command + "' takes exactly one argument: pgboot " +
                           inv.command + (inv.command == "new" ? " NAME" : " VERSION"));
    }
    return Status::Usage("unexpected argument '" + inv.operands.front() + "' for '" + inv.command +
                         "'; to run an application, put it after --");
  }
  if (inv.command == "run") {
    if (!has_dashdash || inv.app.empty()) {
      return Status::Usage("no application given: pgboot [OPTIONS] -- APP [ARGS...]");
    }
  } else if (has_dashdash) {
    return Status::Usage("'" + inv.command + "' runs no application; drop the -- and what follows");
  }

  if (r.count("target")) {
    inv.target = r["target"].as<std::string>();
    if (inv.target.empty()) return Status::Usage("--target needs a version");
  }
  inv.dry_run = r.count("dry-run") > 0;
  if (r.count("output")) {
    inv.output = r["output"].as<std::string>();
    if (inv.output != "text" && inv.output != "json") {
      return Status::Usage("--output must be text or json, not '" + inv.output + "'");
    }
  }
  inv.fail_on_pending = r.count("fail-on-pending") > 0;
  inv.history = r.count("history") > 0;
  if (r.count("steps")) {
    std::string s = r["steps"].as<std::string>();
    bool digits = !s.empty() && s.size() < 10;
    for (char c : s) digits = digits && c >= '0' && c <= '9';
    if (!digits || std::stoll(s) < 1) {
      return Status::Usage("--steps must be a whole number >= 1, not '" + s + "'");
    }
    inv.steps = std::stoll(s);
  }
  if (r.count("to")) inv.to = r["to"].as<std::string>();
  inv.batch = r.count("batch") > 0;
  if ((inv.steps ? 1 : 0) + (inv.to ? 1 : 0) + (inv.batch ? 1 : 0) > 1) {
    return Status::Usage("rollback takes at most one of --steps, --to and --batch");
  }
  inv.allow_production = r.count("allow-production") > 0;
  inv.yes = r.count("yes") > 0;
  inv.force = r.count("force") > 0;
  return inv;
}

}  // namespace pgboot
