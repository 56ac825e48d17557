// The name of the machine pgboot runs on, as it signs its connections and history rows.
#pragma once

#include <string>

namespace pgboot {

// gethostname(), or "unknown" when the system gives none.
std::string Hostname();

}  // namespace pgboot
