#include "backoff.h"

#include <algorithm>
#include <cmath>

namespace pgboot {

int64_t Backoff::Next(double u01) {
  n_ = next_n_;
  if (next_n_ < 62) ++next_n_;  // base * 2^n is capped long before, but never overflow n itself
  const int64_t cap = std::max<int64_t>(0, cap_ms_);
  int64_t ceiling = base_ms_;
  for (int i = 0; i < n_ && ceiling < cap; ++i) ceiling *= 2;
  ceiling_ = std::min(cap, ceiling);
  const double u = std::clamp(u01, 0.0, 1.0);
  const auto draw = static_cast<int64_t>(std::floor(u * static_cast<double>(ceiling_ + 1)));
  return std::min(draw, ceiling_);
}

}  // namespace pgboot
