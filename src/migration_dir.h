// The migrations directory (docs/reference.md, "Migration files"): which of its entries are
// migration files, and of which kind.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace pgboot {

enum class FileKind { kNative, kPairsUp, kPairsDown, kPairsVerify };

// A migration file name: <digits>_<name>(.sql|.up.sql|.down.sql).
struct FileName {
  FileKind kind;
  std::string stem;  // Without .sql / .up.sql / .down.sql: what pairs up and down share.
  std::string version;
  std::string name;
};

// The name of `file` (which ends in .sql), or nothing when it is not a migration's.
std::optional<FileName> ParseFileName(std::string_view file);

struct DirEntry {
  std::string file;
  // readdir()'s d_type: it spares a stat() per file (a no-op start reads every file, so
  // syscalls add up); DT_UNKNOWN and links are stat()ed by the caller.
  unsigned char d_type;
};

// The .sql entries of `dir` that are not hidden, sorted by name. A missing or unreadable
// directory is InvalidFiles (exit 8).
Result<std::vector<DirEntry>> ListSqlFiles(const std::string& dir);

}  // namespace pgboot
