// Command-line parsing: argv -> Invocation (the only file that includes cxxopts).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "status.h"

namespace pgboot {

// What the user asked for, before configuration is merged.
struct Invocation {
  std::string command = "run";        // canonical name: aliases up/info/down resolved
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
  bool allow_production = false;
  bool yes = false;
  bool force = false;
  bool help = false;
  bool version = false;
};

// Parses argv. Options may appear anywhere before `--`; nothing after it is
// parsed. Usage errors (exit 2) say what was wrong and how to fix it.
Result<Invocation> ParseCommandLine(int argc, char** argv);

// The text `pgboot --help` prints.
std::string HelpText();

}  // namespace pgboot
