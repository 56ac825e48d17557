// Reading the small files a user names as inputs (a URL file, the TOML file) without ever hanging.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "status.h"

namespace pgboot {

// The most an input file may hold (docs/reference.md, "Inputs pgboot refuses").
inline constexpr size_t kMaxInputFileBytes = 1 << 20;

// Reads `path`, which must be, after following symlinks (Kubernetes secret
// volumes are symlinks), a regular file of at most kMaxInputFileBytes. The
// open is non-blocking and the type is checked with fstat on the opened file,
// so a FIFO, a directory or a device is refused at once instead of blocking
// in open() or reading forever. `what` names the input in messages, e.g.
// "DATABASE_URL_FILE". Errors are Usage (exit 2) and name the file.
Result<std::string> ReadInputFile(const std::string& path, const std::string& what);

// As ReadInputFile, but a file that does not exist is no error: nullopt.
Result<std::optional<std::string>> ReadOptionalInputFile(const std::string& path,
                                                         const std::string& what);

}  // namespace pgboot
