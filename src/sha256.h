// SHA-256 (FIPS 180-4) for migration checksums, so the core library needs no crypto dependency.
#pragma once

#include <string>
#include <string_view>

namespace pgboot {

// Returns the SHA-256 digest of `data` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view data);

}  // namespace pgboot
