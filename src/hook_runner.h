// Hook runner: the --before-migrate/--after-migrate commands, run through /bin/sh in a process
// group of their own (docs/reference.md, "Hooks").
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "status.h"

namespace pgboot {

enum class HookKind { kBeforeMigrate, kAfterMigrate };

// "before_migrate" or "after_migrate": PGBOOT_HOOK and the `hook` log field.
const char* HookName(HookKind kind);
// "--before-migrate" or "--after-migrate": how messages name the setting.
const char* HookFlag(HookKind kind);

// Environment variables as name/value pairs.
using EnvPairs = std::vector<std::pair<std::string, std::string>>;

// The shell every hook runs through. An absolute path: a hook does not
// depend on PATH, and an image without a shell is found before any wait.
inline constexpr char kHookShell[] = "/bin/sh";

// HookFailed (exit 9) unless `shell` is an executable regular file.
Status CheckHookShell(const char* shell = kHookShell);

// A hook's whole environment: `base` (NAME=VALUE entries, as environ holds
// them), with `libpq` (PGHOST, PGPASSWORD, ... of pgboot's connection) and
// then PGBOOT_HOOK, PGBOOT_PENDING (the count of `versions`) and
// PGBOOT_PENDING_VERSIONS (`versions`, space-separated) replacing entries of
// the same name.
std::vector<std::string> HookEnvironment(const std::vector<std::string>& base,
                                         const EnvPairs& libpq, HookKind kind,
                                         const std::vector<std::string>& versions);

// pgboot's own environment as NAME=VALUE entries.
std::vector<std::string> ProcessEnvironment();

struct HookRun {
  HookKind kind = HookKind::kBeforeMigrate;
  std::string command;
  std::vector<std::string> versions;  // PGBOOT_PENDING_VERSIONS
  EnvPairs libpq;                     // the connection's libpq variables
  int64_t grace_ms = 5000;            // --init-grace
  const char* shell = kHookShell;
};

// Runs `shell -c command` with HookEnvironment, stdin from /dev/null and
// stdout and stderr on pgboot's stderr, as the leader of a new process group
// with the signal mask and dispositions pgboot inherited; logs hook.start and
// hook.done or hook.failed. Ok when it exits 0; HookFailed when it exits
// non-zero, is killed or cannot start. A terminating signal pgboot gets
// meanwhile goes to the hook's process group, which is SIGKILLed once it is
// still there after `grace_ms`: then Status::Signal of that first signal.
Status RunHook(const HookRun& run);

}  // namespace pgboot
