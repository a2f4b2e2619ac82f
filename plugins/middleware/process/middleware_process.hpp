#pragma once
// The `process` middleware: runs an external program and speaks GoReplay's middleware
// protocol with it (hex lines on stdin/stdout). What the program writes back is emitted;
// what it does not is dropped and counted. Restarted when it exits, if so configured.
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "doppel/stage.hpp"

namespace doppel::plugins {

struct ProcessMiddlewareConfig {
  std::vector<std::string> argv;
  bool restart = true;  // restart = "always"
  std::chrono::nanoseconds backoff = std::chrono::milliseconds(100);
  std::chrono::nanoseconds backoff_max = std::chrono::seconds(10);
  std::size_t max_line = std::size_t{256} << 20;  // hex bytes of one line written back
  // After this long with nothing sent or written back, messages not written back count as dropped.
  std::chrono::nanoseconds return_timeout = std::chrono::seconds(2);
};

class ProcessMiddleware : public Stage {
 public:
  explicit ProcessMiddleware(ProcessMiddlewareConfig config);
  ~ProcessMiddleware() override;

  void start(StageContext& context) override;
  void process(const MessagePtr& message) override;
  void flush() override;
  void stop() override;
  std::size_t pending() const override;

 private:
  struct Child {
    pid_t pid = -1;
    int stdin_fd = -1;   // our end of a socketpair (send with MSG_NOSIGNAL: no SIGPIPE)
    int stdout_fd = -1;
    int stderr_fd = -1;
  };
  Child spawn();  // throws std::runtime_error when the program cannot be started
  void supervise();
  void read_stdout(int fd);
  void handle_line(std::string_view line);
  void forward_stderr(int fd, pid_t pid);
  // Counts messages never written back; `force` ignores return_timeout (shutdown).
  void write_off_unreturned(bool force);
  int wait_child(pid_t pid);

  ProcessMiddlewareConfig config_;
  std::string command_text_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::mutex write_mutex_;  // held while writing to the child's stdin
  Child child_;
  bool alive_ = false;
  bool stopping_ = false;
  bool supervisor_done_ = false;
  std::uint64_t sent_ = 0, returned_ = 0, written_off_ = 0;
  std::chrono::steady_clock::time_point last_activity_;
  std::thread supervisor_;
  Counter* sent_counter_ = nullptr;
  Counter* returned_counter_ = nullptr;
  Counter* restarts_ = nullptr;
};

}  // namespace doppel::plugins
