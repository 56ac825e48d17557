#include "build_info.h"

#include "pgboot_commit.h"

namespace pgboot {

std::string VersionLine() { return "pgboot " PGBOOT_VERSION " (commit " PGBOOT_COMMIT ")"; }

}  // namespace pgboot
