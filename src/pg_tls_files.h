// The TLS files a connection names, checked before the first attempt (libpq skips a missing one).
#pragma once

#include <string>

#include "status.h"

namespace pgboot {

// Fails (ConnectRejected: exit 4, docs/reference.md "Waiting for the
// database") when `conninfo` or the environment (PGSSLCERT, PGSSLKEY,
// PGSSLROOTCERT) explicitly names an sslcert, sslkey or sslrootcert file that
// does not exist: libpq would silently connect without a client certificate,
// or without verifying the server under sslmode=require. A conninfo libpq
// cannot parse passes (the attempt reports it as a configuration error).
Status CheckConfiguredTlsFiles(const std::string& conninfo);

}  // namespace pgboot
