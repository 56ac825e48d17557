// Command-line parsing: argv -> Invocation over the command table (the only file that includes
// cxxopts).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config.h"
#include "status.h"

namespace pgboot {

// What the user asked for, before configuration is merged.
struct Invocation {
  std::string command = "run";        // canonical name: aliases resolved
  FlagValues flags;                   // settings given as flags (and "config")
  std::vector<std::string> app;       // everything after `--`
  std::vector<std::string> operands;  // baseline's V, new's NAME
  // Command options.
  std::string target;
  bool dry_run = false;
  std::string output = "text";
  bool fail_on_pending = false;
  bool history = false;
  std::optional<int64_t> steps;
  std::optional<std::string> to;
  bool batch = false;
  bool future = false;
  bool allow_production = false;
  bool yes = false;
  bool force = false;
  bool help = false;
  bool version = false;
};

using CommandHandler = Status (*)(const Invocation& inv, const Config& cfg);

// One command (docs/reference.md, "Commands"): parsing, --help and dispatch all
// read the same row.
struct CommandSpec {
  const char* name;
  std::vector<const char*> aliases;
  std::vector<const char*> options;  // command options it accepts, without dashes
  const char* operand;               // the one operand it takes ("V", "NAME"), or nullptr
  bool runs_app;                     // takes `-- APP [ARGS...]` (and requires it)
  CommandHandler handler;
  const char* help;  // one line per '\n' in --help
};

// Parses argv against `commands`, whose first row is the default command.
// Options may appear anywhere before `--`; nothing after it is parsed. Usage
// errors (exit 2) say what was wrong and how to fix it.
Result<Invocation> ParseCommandLine(int argc, char** argv, std::span<const CommandSpec> commands);

// The row of `inv.command`; nullptr when there is none.
const CommandSpec* FindCommand(std::span<const CommandSpec> commands, const std::string& name);

// The text `pgboot --help` prints.
std::string HelpText(std::span<const CommandSpec> commands);

// The line `pgboot --version` and `pgboot version` print.
std::string VersionText();

}  // namespace pgboot
