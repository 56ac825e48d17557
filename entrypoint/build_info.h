// What `pgboot --version` prints: the version from CMake's project() and the build's commit.
#pragma once

#include <string>

namespace pgboot {

// "pgboot 0.1.0 (commit 0123abcd...)": the commit is the one passed into the
// build (PGBOOT_COMMIT), or the source tree's HEAD; docs/reference.md "Version".
std::string VersionLine();

}  // namespace pgboot
