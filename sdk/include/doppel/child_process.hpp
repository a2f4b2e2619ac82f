#pragma once
// Programs a plugin runs and talks to over their standard streams (the `process` middleware
// and comparator): starting them, splitting what they write into lines, and describing how
// they ended.
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace doppel {

// A running program. The caller owns the descriptors.
struct ChildProcess {
  pid_t pid = -1;
  int stdin_fd = -1;   // our end of a socket pair: write with send_all (no SIGPIPE when it died)
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// A `command` option: one string is split on spaces, as GoReplay's --middleware "node mw.js";
// several strings are the argument list as is (for arguments with spaces).
std::vector<std::string> split_command(std::vector<std::string> command);
// The argument list as one line, for messages.
std::string command_text(const std::vector<std::string>& argv);
// Why `program` cannot be executed (not found on PATH, not executable), or "" when it can.
// For validation: a pipeline whose program is missing is refused before anything runs.
std::string program_problem(const std::string& program);

// Starts `argv` in a process group of its own (a Ctrl-C at the terminal reaches doppel, which
// drains the program before stopping it), with default signal dispositions and `environment`
// added to (or replacing in) doppel's. Throws std::runtime_error when it cannot be started.
ChildProcess spawn_child(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& environment = {});
// Waits for `pid` to end; its wait status.
int wait_child(pid_t pid);
// "exited with status 1", "was killed by signal Killed".
std::string describe_exit(int status);
// Writes all of `bytes` to the program's stdin; false when it is gone (or stopped reading and
// `fd` was shut down).
bool send_all(int fd, std::string_view bytes);

// Splits a byte stream into lines ("\n"; a "\r" before it is kept). A line longer than
// `max_line` is not kept whole: too_long() is called once for it and its bytes are skipped.
class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line) : max_line_(max_line) {}

  template <class Line, class TooLong>
  void feed(std::string_view bytes, Line&& line, TooLong&& too_long) {
    buffer_.append(bytes);
    std::size_t begin = 0;
    for (;;) {
      auto nl = buffer_.find('\n', scan_);
      if (nl == std::string::npos) break;
      if (!skipping_) line(std::string_view(buffer_).substr(begin, nl - begin));
      skipping_ = false;
      begin = scan_ = nl + 1;
    }
    buffer_.erase(0, begin);
    scan_ = buffer_.size();
    if (buffer_.size() > max_line_) {
      if (!skipping_) too_long();
      skipping_ = true;
      buffer_.clear();
      scan_ = 0;
    }
  }
  // What is left after the last "\n" (a last line without one).
  std::string_view rest() const { return skipping_ ? std::string_view() : std::string_view(buffer_); }

 private:
  std::size_t max_line_;
  std::string buffer_;
  std::size_t scan_ = 0;   // where the search for the next "\n" resumes
  bool skipping_ = false;  // inside a line longer than max_line_
};

// Reads `fd` to its end and hands over each line, for a program's stderr: a runaway line is
// handed over in pieces of 64 KiB rather than skipped, so nothing it said is lost.
void read_lines(int fd, const std::function<void(std::string_view)>& line);

}  // namespace doppel
