/* Reads the SQLSTATE libpq keeps for a failed connection, which its public API does not expose. */

/*
 * A connection that fails during startup (wrong password, missing database,
 * server starting up) has no PGresult, so PQresultErrorField cannot tell
 * pgboot *why* it failed; matching the English message text would break on
 * servers with a localised lc_messages. libpq records the server's code in
 * the internal `last_sqlstate` (PQping relies on it), so this file, the only
 * one that sees libpq-int.h, reads it. Static linking pins the struct layout
 * to the libpq.a we link; tests/integration covers 28P01/3D000/57P03.
 */
#include "postgres_fe.h"

/*
 * Debian's pg_config.h says ENABLE_GSS, but the GSSAPI headers are not
 * installed (and pgboot links no GSSAPI: see gss_ldap_shim.c). Every GSS
 * member of struct pg_conn comes after last_sqlstate, so leaving them out
 * does not move the one field read here.
 */
#undef ENABLE_GSS
#include "libpq-int.h"

const char* pgboot_conn_last_sqlstate(const PGconn* conn) {
  return conn != NULL ? conn->last_sqlstate : "";
}
