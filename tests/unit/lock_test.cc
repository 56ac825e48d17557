// MigrationLock on FakeDatabase and FakeClock: the wait, its lock.waiting lines, the timeout,
// signals.
#include <doctest/doctest.h>

#include <string>

#include "exit_code.h"
#include "fakes.h"
#include "log.h"
#include "migration_lock.h"

namespace pgboot {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct Locking {
  Locking() { LogInit(LogFormat::kText, LogLevel::kInfo); }
  FakeDatabase db;
  FakeClock clock;
  Config cfg;
  History history{db, QualifiedName{"public", "pgboot_history"}};
};

TEST_CASE("lock: waits while another session holds it, naming the holder at once") {
  Locking l;
  l.cfg.lock_log_interval_ms = 10000;
  l.db.Answer("pg_try_advisory_lock", {"f"}, /*times=*/3);
  StderrCapture log;
  {
    MigrationLock lock(l.db, l.history, l.cfg, l.clock);
    REQUIRE(lock.Acquire().ok());
  }
  std::vector<std::string> waiting = log.Lines("lock.waiting");
  std::vector<std::string> acquired = log.Lines("lock.acquired");
  CHECK(l.db.Count("pg_try_advisory_lock") == 4);
  REQUIRE(l.clock.sleeps.size() == 3);
  for (int64_t s : l.clock.sleeps) CHECK((s >= 1 && s <= 501));
  // One lock.waiting at the first failed try (the next is due in 10 s).
  REQUIRE(waiting.size() == 1);
  CHECK(Has(waiting[0], "holder_pid=777"));
  CHECK(Has(waiting[0], "holder_application_name=other-pgboot"));
  CHECK(Has(waiting[0], "holder_since=2026-01-01T00:00:00.000Z"));
  CHECK(Has(waiting[0], "waited_ms=0"));
  REQUIRE(acquired.size() == 1);
  CHECK(l.db.Count("pg_advisory_unlock") == 1);  // released by the destructor
}

TEST_CASE("lock: lock.waiting every lock_log_interval, then exit 7 at lock_timeout") {
  Locking l;
  l.cfg.lock_log_interval_ms = 1000;
  l.cfg.lock_timeout_ms = 3500;
  l.db.Answer("pg_try_advisory_lock", {"f"});
  const int64_t start = l.clock.now;
  StderrCapture log;
  MigrationLock lock(l.db, l.history, l.cfg, l.clock);
  Status s = lock.Acquire();
  std::vector<std::string> waiting = log.Lines("lock.waiting");
  CHECK(ExitCodeFor(s) == kExitLockTimeout);
  CHECK(Has(s.message(), "could not get the migration lock within " + FormatDuration(3500)));
  // At 0, 1, 2 and 3 s: sleeps never overshoot a due line or the deadline.
  CHECK(waiting.size() == 4);
  CHECK(l.clock.now - start == 3500);
  CHECK(l.db.Count("pg_advisory_unlock") == 0);
}

TEST_CASE("lock: a holder that lets go between the try and the query logs pid 0") {
  Locking l;
  l.db.Answer("pg_try_advisory_lock", {"f"}, 1);
  l.db.AnswerRows("FROM pg_locks", {});
  StderrCapture log;
  MigrationLock lock(l.db, l.history, l.cfg, l.clock);
  REQUIRE(lock.Acquire().ok());
  std::vector<std::string> waiting = log.Lines("lock.waiting");
  REQUIRE(waiting.size() == 1);
  CHECK(Has(waiting[0], "holder_pid=0"));
}

TEST_CASE("lock: a terminating signal ends the wait with it") {
  Locking l;
  l.db.Answer("pg_try_advisory_lock", {"f"});
  l.clock.signal_on = 2;
  MigrationLock lock(l.db, l.history, l.cfg, l.clock);
  Status s = lock.Acquire();
  CHECK(s.is_signal());
  CHECK(ExitCodeFor(s) == 143);
  CHECK(l.clock.sleeps.size() == 2);
}

}  // namespace
}  // namespace pgboot
