// Fast ticks for gloo's TCP event loop while connections open and close (internal to comm/gloo).
//
// gloo's TCP transport (Debian's 2022 snapshot) gives every pair its own listening socket. The
// connecting side of a pair, and every pair's destructor, removes a socket from the device's
// epoll loop and then waits for the loop to finish one more turn (tcp::Loop::unregisterDescriptor),
// so that no handler runs after it returns. The loop turns when an event arrives or when its
// epoll_wait times out, after 10 ms. While a context connects or closes its pairs nothing else
// happens on the loop, so each pair costs up to 10 ms (5 on average): at world 8 most of a mesh
// build over gloo was these waits (docs/PERFORMANCE.md, "Mesh build: nmesh vs PyTorch").
//
// A LoopTicker registers a timerfd with the device's loop. While a Fast() guard is held the timer
// fires every 100 us, so the loop turns at once and a waiter waits at most that long; with no guard
// the timer is disarmed and the loop is as gloo left it. The handler only reads the timer.
#ifndef NMESH_COMM_GLOO_LOOP_TICKER_H_
#define NMESH_COMM_GLOO_LOOP_TICKER_H_

#include <memory>
#include <mutex>
#include <optional>

#include "gloo/transport/device.h"

namespace nmesh::comm::gloo {

class LoopTicker {
 public:
  // A ticker for `device`'s loop, or null when it is not a TCP device or the timer cannot be made
  // (then the loop keeps gloo's 10 ms turns: slower, never wrong).
  static std::shared_ptr<LoopTicker> For(std::shared_ptr<::gloo::transport::Device> device);

  ~LoopTicker();
  LoopTicker(const LoopTicker&) = delete;
  LoopTicker& operator=(const LoopTicker&) = delete;

  // Fast ticks until the guard goes. Guards nest (from any thread); the last one disarms.
  class Guard {
   public:
    explicit Guard(LoopTicker* ticker);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    LoopTicker* ticker_;
  };
  Guard Fast() { return Guard(this); }

 private:
  class Handler;
  LoopTicker(std::shared_ptr<::gloo::transport::Device> device, int fd);
  void Arm(bool fast);

  std::shared_ptr<::gloo::transport::Device> device_;
  int fd_;
  std::unique_ptr<Handler> handler_;
  std::mutex mu_;
  int fast_ = 0;  // guards held
};

// A guard of `ticker`, doing nothing when it is null.
class FastTicks {
 public:
  explicit FastTicks(const std::shared_ptr<LoopTicker>& ticker) {
    if (ticker != nullptr) guard_.emplace(ticker.get());
  }

 private:
  std::optional<LoopTicker::Guard> guard_;
};

}  // namespace nmesh::comm::gloo

#endif  // NMESH_COMM_GLOO_LOOP_TICKER_H_
