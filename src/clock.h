// Clock: monotonic time and randomness, an interface so that tests can replace them.
#pragma once

#include <cstdint>

namespace pgboot {

// Monotonic milliseconds and a uniform [0,1) source. The real one reads
// CLOCK_MONOTONIC; unit tests use a fake they advance by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() = 0;
  virtual double Uniform01() = 0;
};

// The process's real clock (CLOCK_MONOTONIC, a seeded PRNG).
Clock& RealClock();

}  // namespace pgboot
