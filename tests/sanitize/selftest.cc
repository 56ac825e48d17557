// The sanitized run's proof that it can fail (tests/sanitize/README.md): with
// PGBOOT_SANITIZER_SELFTEST=leak, overflow or ub, unit_tests commits that fault
// on purpose, and sanitize.cmake's unit.sanitizer_selftest_* tests pass only
// when the sanitizer reports it and the process exits 86. Without the variable
// (every ordinary run) the cases are skipped. Compiled into unit_tests only in a
// -DPGBOOT_SANITIZE=ON build.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

std::string_view Mode() {
  const char* v = std::getenv("PGBOOT_SANITIZER_SELFTEST");
  return v ? v : "";
}

void* volatile g_kept = nullptr;

[[gnu::noinline]] void Leak() {
  for (int i = 0; i < 16; ++i) {
    g_kept = std::malloc(64 + i);
    std::memset(g_kept, i, 64);
  }
  g_kept = nullptr;  // the last pointer to each block is gone
}

[[gnu::noinline]] int Overflow() {
  char* volatile buf = static_cast<char*>(std::malloc(8));
  volatile int i = 8;
  const int c = buf[i];  // one past the end
  std::free(buf);
  return c;
}

[[gnu::noinline]] int SignedOverflow() {
  volatile int big = 0x7fffffff;
  return big + 1;
}

}  // namespace

TEST_CASE("sanitizer self-test" *
          doctest::skip(std::getenv("PGBOOT_SANITIZER_SELFTEST") == nullptr)) {
  if (Mode() == "leak") Leak();
  if (Mode() == "overflow") CHECK(Overflow() != 1000);
  if (Mode() == "ub") CHECK(SignedOverflow() != 0);
}
