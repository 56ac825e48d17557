// GateSession: the schema gate's GateSource over a real session — history reads, LISTEN,
// reconnects.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clock.h"
#include "config.h"
#include "database.h"
#include "gate.h"

namespace pgboot {

struct GateSessionOptions {
  // LISTEN on channel `pgboot` and wake on its notifications, on sessions whose
  // lock mode is session (Database::lock_mode). Never in transaction lock mode,
  // where a pooler hands each transaction another server session and LISTEN
  // would be lost: the gate then only polls. False: poll only, everywhere.
  bool listen = true;
  // Makes a new ready session before `deadline_ms` on the gate's clock (< 0: no
  // deadline); a Timeout status when it passes first.
  std::function<Result<std::unique_ptr<Database>>(int64_t deadline_ms)> connect;
  // Sleeps `ms` (through the EventLoop); Status::Signal when a signal cut it short.
  std::function<Status(int64_t ms)> sleep;
};

class GateSession : public GateSource {
 public:
  GateSession(std::unique_ptr<Database> db, const Config& cfg, GateSessionOptions options,
              Clock& clock);

  // LISTENs first (when listening and not yet on this session), so that no commit
  // between a read and the LISTEN goes unnoticed. A missing table or schema is no
  // rows. 42501 on the table or its schema is
  // a Precondition (exit 6) naming the grants the session's role needs.
  Result<std::vector<HistoryRow>> ReadHistory() override;
  // Listening on this session: until a notification for this history table, else
  // a plain sleep.
  Status Wait(int64_t ms) override;
  Status Reconnect(int64_t deadline_ms) override;

 private:
  Status Listen();
  Status PermissionError(const Status& s);

  std::unique_ptr<Database> db_;
  const Config& cfg_;
  GateSessionOptions options_;
  Clock& clock_;
  std::string payload_;     // quote_ident(schema).quote_ident(table), as the server spells it
  bool listening_ = false;  // LISTEN ran on this session
};

// The statements that let `role` pass the gate on history table `table` (docs/reference.md).
std::string GateGrants(const QualifiedName& table, const std::string& role);

}  // namespace pgboot
