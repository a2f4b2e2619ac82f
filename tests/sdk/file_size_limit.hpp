#pragma once
// Simulates a full disk for one test process: while a FileSizeLimit lives, files cannot grow past
// `bytes`, and write(2) writes what fits, then fails with EFBIG, as a full disk does with ENOSPC
// (a short write, then an error). Needs no privileges and no filesystem of its own; the
// integration test of the file output fills a real tmpfs instead.
#include <sys/resource.h>

#include <csignal>
#include <stdexcept>

namespace doppel::testing {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    if (::getrlimit(RLIMIT_FSIZE, &saved_) != 0) throw std::runtime_error("getrlimit failed");
    previous_handler_ = std::signal(SIGXFSZ, SIG_IGN);  // an error instead of the signal
    set(bytes);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, previous_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

  void set(rlim_t bytes) {
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) throw std::runtime_error("setrlimit failed");
  }
  // Space returns.
  void lift() { set(saved_.rlim_cur); }

 private:
  rlimit saved_{};
  void (*previous_handler_)(int) = SIG_DFL;
};

}  // namespace doppel::testing
