// Backoff: exponential backoff with full jitter, the one every retry loop of pgboot draws its
// sleeps from.
#pragma once

#include <cstdint>

namespace pgboot {

// The n-th draw (n from 0) is uniform over whole milliseconds in
// [0, min(cap, base * 2^n)], both ends included: full jitter, so that a fleet
// of starters does not retry in step.
class Backoff {
 public:
  Backoff(int64_t base_ms, int64_t cap_ms) : base_ms_(base_ms), cap_ms_(cap_ms) {}

  // The next sleep, drawn with `u01` in [0, 1); the exponent then grows.
  int64_t Next(double u01);
  // The next draw uses n = 0 again.
  void Restart() { next_n_ = 0; }
  void set_cap(int64_t cap_ms) { cap_ms_ = cap_ms; }

  int64_t cap() const { return cap_ms_; }
  // min(cap, base * 2^n) of the last Next().
  int64_t Ceiling() const { return ceiling_; }
  // The exponent n used by the last Next().
  int Exponent() const { return n_; }

 private:
  int64_t base_ms_;
  int64_t cap_ms_;
  int next_n_ = 0;
  int n_ = 0;
  int64_t ceiling_ = 0;
};

}  // namespace pgboot
