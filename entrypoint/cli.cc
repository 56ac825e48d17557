#include "cli.h"

#include <algorithm>
#include <cxxopts.hpp>

#include "build_info.h"

namespace pgboot {
namespace {

// The command options; which command accepts which is the command table's.
struct OptionSpec {
  const char* name;
  bool takes_value;
  const char* help;  // --help prefixes the commands that accept it
};

constexpr OptionSpec kCommandOptions[] = {
    {"target", true, "apply up to and including version V"},
    {"dry-run", false, "print the SQL that would run; change nothing"},
    {"output", true, "text or json"},
    {"fail-on-pending", false, "exit 1 when a migration is pending"},
    {"history", false, "list the audit log, newest first"},
    {"steps", true, "the N highest applied versions"},
    {"to", true, "every applied version above V (V stays)"},
    {"batch", false, "every version of the newest batch"},
    {"future", false, "every applied version above the newest file (undo a newer release)"},
    {"allow-production", false, "proceed although PGBOOT_ENV=production"},
    {"yes", false, "do it (without --yes, only print the plan)"},
    {"force", false, "even when history has rows"},
};

bool Accepts(const CommandSpec& c, std::string_view option) {
  return std::any_of(c.options.begin(), c.options.end(),
                     [&](const char* o) { return option == o; });
}

// "migrate, rollback: " for an option those two commands accept.
std::string AcceptedBy(std::span<const CommandSpec> commands, std::string_view option) {
  std::string out;
  for (const CommandSpec& c : commands) {
    if (!Accepts(c, option)) continue;
    out += (out.empty() ? "" : ", ") + std::string(c.name);
  }
  return out.empty() ? out : out + ": ";
}

cxxopts::Options BuildOptions(std::span<const CommandSpec> commands) {
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
  for (const OptionSpec& opt : kCommandOptions) {
    const std::string help = AcceptedBy(commands, opt.name) + opt.help;
    if (opt.takes_value) {
      o.add_options("Command")(opt.name, help, cxxopts::value<std::string>());
    } else {
      o.add_options("Command")(opt.name, help);
    }
  }
  o.add_options("Positional")("positional", "", cxxopts::value<std::vector<std::string>>());
  o.parse_positional({"positional"});
  return o;
}

// One "Commands:" entry: "  migrate, up     wait, then apply ...", the help's
// further lines indented under its first.
std::string CommandHelp(const CommandSpec& c, bool is_default) {
  std::string label = c.name;
  if (c.operand) label += std::string(" ") + c.operand;
  for (const char* alias : c.aliases) label += std::string(", ") + alias;
  if (is_default) label += " (default)";
  label.resize(std::max<size_t>(label.size() + 1, 16), ' ');
  std::string out = "  " + label;
  for (char ch : std::string_view(c.help)) {
    out += ch;
    if (ch == '\n') out += std::string(18, ' ');
  }
  return out + "\n";
}

Result<const CommandSpec*> ResolveCommand(std::span<const CommandSpec> commands,
                                          const std::string& word) {
  if (const CommandSpec* c = FindCommand(commands, word)) return c;
  if (ParseBool(word).ok()) {
    return Status::Usage("unknown command '" + word +
                         "'; a boolean flag takes its value with '=', e.g. "
                         "--run-migrations=" +
                         word);
  }
  return Status::Usage("unknown command '" + word +
                       "'; to run an application, put it after --: pgboot -- " + word + " ...");
}

// The rules every command shares: its own options only, its operand count, `--` only to run an
// application.
Status CheckShape(const CommandSpec& c, const cxxopts::ParseResult& r, const Invocation& inv,
                  bool has_dashdash) {
  for (const OptionSpec& opt : kCommandOptions) {
    if (r.count(opt.name) && !Accepts(c, opt.name)) {
      return Status::Usage("--" + std::string(opt.name) + " is not an option of '" + inv.command +
                           "' (see pgboot --help)");
    }
  }
  const size_t want_operands = c.operand ? 1 : 0;
  if (inv.operands.size() != want_operands) {
    if (c.operand) {
      return Status::Usage("'" + inv.command + "' takes exactly one argument: pgboot " +
                           inv.command + " " + c.operand);
    }
    return Status::Usage("unexpected argument '" + inv.operands.front() + "' for '" + inv.command +
                         "'; to run an application, put it after --");
  }
  if (c.runs_app) {
    if (!has_dashdash || inv.app.empty()) {
      return Status::Usage("no application given: pgboot [OPTIONS] -- APP [ARGS...]");
    }
  } else if (has_dashdash) {
    return Status::Usage("'" + inv.command + "' runs no application; drop the -- and what follows");
  }
  return Status::Ok();
}

// The command options' values and the rules of each.
Status ReadCommandOptions(const cxxopts::ParseResult& r, Invocation* inv) {
  if (r.count("target")) {
    inv->target = r["target"].as<std::string>();
    if (inv->target.empty()) return Status::Usage("--target needs a version");
  }
  inv->dry_run = r.count("dry-run") > 0;
  if (r.count("output")) {
    inv->output = r["output"].as<std::string>();
    if (inv->output != "text" && inv->output != "json") {
      return Status::Usage("--output must be text or json, not '" + inv->output + "'");
    }
  }
  inv->fail_on_pending = r.count("fail-on-pending") > 0;
  inv->history = r.count("history") > 0;
  if (r.count("steps")) {
    std::string s = r["steps"].as<std::string>();
    bool digits = !s.empty() && s.size() < 10;
    for (char c : s) digits = digits && c >= '0' && c <= '9';
    if (!digits || std::stoll(s) < 1) {
      return Status::Usage("--steps must be a whole number >= 1, not '" + s + "'");
    }
    inv->steps = std::stoll(s);
  }
  if (r.count("to")) inv->to = r["to"].as<std::string>();
  inv->batch = r.count("batch") > 0;
  inv->future = r.count("future") > 0;
  if ((inv->steps ? 1 : 0) + (inv->to ? 1 : 0) + (inv->batch ? 1 : 0) + (inv->future ? 1 : 0) > 1) {
    return Status::Usage("rollback takes at most one of --steps, --to, --batch and --future");
  }
  inv->allow_production = r.count("allow-production") > 0;
  inv->yes = r.count("yes") > 0;
  inv->force = r.count("force") > 0;
  return Status::Ok();
}

}  // namespace

const CommandSpec* FindCommand(std::span<const CommandSpec> commands, const std::string& name) {
  for (const CommandSpec& c : commands) {
    if (name == c.name) return &c;
    for (const char* alias : c.aliases) {
      if (name == alias) return &c;
    }
  }
  return nullptr;
}

std::string VersionText() { return VersionLine() + "\n"; }

std::string HelpText(std::span<const CommandSpec> commands) {
  cxxopts::Options o = BuildOptions(commands);
  std::string text = o.help({"Global", "Command"});
  std::string list;
  for (const CommandSpec& c : commands) list += CommandHelp(c, &c == &commands.front());
  return "pgboot " PGBOOT_VERSION
         " - wait for PostgreSQL, migrate under a lock, then exec the app\n\n"
         "Usage:\n"
         "  pgboot [OPTIONS] [COMMAND] [COMMAND OPTIONS] [-- APP [ARGS...]]\n\n"
         "Commands:\n" +
         list + text.substr(text.find('\n') + 1) +
         "\nExit codes: 0 ok, 1 internal error/pending/findings, 2 usage or configuration,\n"
         "3 database not ready, 4 fatal connection error, 5 migration SQL failed,\n"
         "6 validation or precondition failed, 7 lock timeout, 8 invalid migration files,\n"
         "126/127 APP not executable/not found, 128+N ended by signal N.\n";
}

Result<Invocation> ParseCommandLine(int argc, char** argv, std::span<const CommandSpec> commands) {
  Invocation inv;
  inv.command = commands.front().name;
  // Split at the first `--`: nothing after it is parsed.
  std::vector<char*> head;
  int i = 0;
  for (; i < argc; ++i) {
    if (i > 0 && std::string(argv[i]) == "--") break;
    head.push_back(argv[i]);
  }
  const bool has_dashdash = i < argc;
  for (int j = i + 1; j < argc; ++j) inv.app.emplace_back(argv[j]);

  cxxopts::Options o = BuildOptions(commands);
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

  const CommandSpec* command = &commands.front();
  std::vector<std::string> positional;
  if (r.count("positional")) positional = r["positional"].as<std::vector<std::string>>();
  if (!positional.empty()) {
    auto found = ResolveCommand(commands, positional.front());
    if (!found.ok()) return found.status();
    command = *found;
    inv.command = command->name;
    inv.operands.assign(positional.begin() + 1, positional.end());
  }
  if (inv.help || inv.version) return inv;
  if (Status s = CheckShape(*command, r, inv, has_dashdash); !s.ok()) return s;
  if (Status s = ReadCommandOptions(r, &inv); !s.ok()) return s;
  return inv;
}

}  // namespace pgboot
