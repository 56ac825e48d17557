// libpq's results and messages as pgboot values: errors, rows, notices, one-line messages.
#pragma once

#include <libpq-fe.h>

#include <string>
#include <string_view>

#include "database.h"
#include "status.h"

namespace pgboot {

// libpq messages are multi-line ("...failed: Connection refused\n\tIs the
// server running on that host..."): one line for logs and Status messages,
// without libpq's generic hints, and redacted (they may quote the conninfo).
std::string OneLine(std::string_view text);

// An error field of `res`, "" when absent.
const char* Field(const PGresult* res, int code);

// Status::Sql from an error result: the server's primary message with DETAIL
// and HINT appended, its SQLSTATE, and the statement position in characters.
Status SqlError(const PGresult* res);

QueryResult ToQueryResult(const PGresult* res);

bool IsError(ExecStatusType st);

// A PQnoticeReceiver: server NOTICEs and WARNINGs become db.notice log events
// (libpq's default prints them raw to stderr, which would break the JSON log format).
void OnNotice(void* arg, const PGresult* res);

}  // namespace pgboot
