// Clock: monotonic time, randomness and sleeping, an interface so that tests can replace them.
#pragma once

#include <cstdint>

#include "status.h"

namespace pgboot {

// Monotonic milliseconds, a uniform [0,1) source and sleeps. The real one
// reads CLOCK_MONOTONIC and sleeps through the EventLoop; unit tests use a
// fake (tests/unit/fakes.h) whose sleeps only move its time.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() = 0;
  virtual double Uniform01() = 0;
  // Sleeps `ms`; Status::Signal when a terminating signal cut the sleep short.
  virtual Status Sleep(int64_t ms) = 0;
};

// The process's real clock (CLOCK_MONOTONIC, a seeded PRNG, EventLoop sleeps).
Clock& RealClock();

// CLOCK_MONOTONIC in milliseconds: the one monotonic clock every part reads.
int64_t MonotonicNowMs();

}  // namespace pgboot
