#include "clock.h"

#include <time.h>

#include <random>

#include "event_loop.h"

namespace pgboot {
namespace {

class MonotonicClock : public Clock {
 public:
  // Seeded once per process from the OS, so that a fleet of pgboots started in
  // the same second does not draw the same jitter (which would defeat it).
  MonotonicClock() {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    rng_.seed(seq);
  }

  int64_t NowMs() override { return MonotonicNowMs(); }

  double Uniform01() override { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

  // Through the event loop, so that SIGTERM ends the sleep at once.
  Status Sleep(int64_t ms) override {
    EventLoop::Wake w = EventLoop::Get().Wait(-1, 0, ms);
    if (w.kind == EventLoop::Wake::kSignal) return Status::Signal(w.signo);
    return Status::Ok();
  }

 private:
  std::mt19937_64 rng_;
};

}  // namespace

int64_t MonotonicNowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Clock& RealClock() {
  static MonotonicClock clock;
  return clock;
}

}  // namespace pgboot
