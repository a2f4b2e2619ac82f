#pragma once
// An Asio I/O context with threads of its own, for a plugin's sockets and timers.
//
// Each plugin owns its I/O context: Boost.Asio is header-only, so an io_context created in
// one shared object must not be driven by services instantiated in another (the runtime's
// context is not offered to plugins for that reason).
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <thread>
#include <vector>

namespace doppel {

class IoThreads {
 public:
  explicit IoThreads(int threads = 1) : work_(io_.get_executor()) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~IoThreads() { stop(); }
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  boost::asio::io_context& context() { return io_; }

  // Lets queued handlers finish, then joins the threads. Idempotent.
  void stop() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    threads_.clear();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

}  // namespace doppel
