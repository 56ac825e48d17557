#include "pg_result.h"

#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

#include "log.h"

namespace pgboot {

std::string OneLine(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    if (!line.empty() && !line.starts_with("Is the server running")) {
      if (!out.empty()) out += "; ";
      out.append(line);
    }
    pos = end + 1;
  }
  return Redact(out);
}

const char* Field(const PGresult* res, int code) {
  const char* v = PQresultErrorField(res, code);
  return v != nullptr ? v : "";
}

Status SqlError(const PGresult* res) {
  std::string msg = Field(res, PG_DIAG_MESSAGE_PRIMARY);
  if (msg.empty()) msg = PQresultErrorMessage(res);
  if (const char* detail = Field(res, PG_DIAG_MESSAGE_DETAIL); *detail) {
    msg += std::string("; DETAIL: ") + detail;
  }
  if (const char* hint = Field(res, PG_DIAG_MESSAGE_HINT); *hint) {
    msg += std::string("; HINT: ") + hint;
  }
  const int position = std::atoi(Field(res, PG_DIAG_STATEMENT_POSITION));
  return Status::Sql(OneLine(msg), Field(res, PG_DIAG_SQLSTATE), position);
}

QueryResult ToQueryResult(const PGresult* res) {
  QueryResult out;
  const int fields = PQnfields(res);
  const int tuples = PQntuples(res);
  out.columns.reserve(fields);
  for (int f = 0; f < fields; ++f) out.columns.emplace_back(PQfname(res, f));
  for (int f = 0; f < fields; ++f) out.column_types.push_back(PQftype(res, f));
  out.rows.reserve(tuples);
  for (int t = 0; t < tuples; ++t) {
    std::vector<std::optional<std::string>> row;
    row.reserve(fields);
    for (int f = 0; f < fields; ++f) {
      if (PQgetisnull(res, t, f)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(res, t, f), PQgetlength(res, t, f)));
      }
    }
    out.rows.push_back(std::move(row));
  }
  const char* affected = PQcmdTuples(const_cast<PGresult*>(res));
  if (affected != nullptr && *affected != '\0') out.affected = std::strtoll(affected, nullptr, 10);
  return out;
}

bool IsError(ExecStatusType st) {
  return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
}

void OnNotice(void* /*arg*/, const PGresult* res) {
  std::string severity = Field(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity.empty()) severity = Field(res, PG_DIAG_SEVERITY);
  LogFields fields = {{"severity", severity},
                      {"sqlstate", Field(res, PG_DIAG_SQLSTATE)},
                      {"message", OneLine(Field(res, PG_DIAG_MESSAGE_PRIMARY))}};
  if (severity == "WARNING") {
    LogWarn("db.notice", fields);
  } else if (severity == "NOTICE" || severity == "INFO") {
    LogInfo("db.notice", fields);
  } else {
    LogDebug("db.notice", fields);
  }
}

}  // namespace pgboot
