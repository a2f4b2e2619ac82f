#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "../../inputs/file/test_support.hpp"
#include "doppel/testing.hpp"

using namespace doppel;
using namespace std::chrono_literals;

namespace {
// Points standard output at a file while it lives.
class StdoutToFile {
 public:
  explicit StdoutToFile(const std::string& path) {
    std::fflush(stdout);
    saved_ = ::dup(STDOUT_FILENO);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO);
    ::close(fd);
  }
  ~StdoutToFile() {
    std::fflush(stdout);
    ::dup2(saved_, STDOUT_FILENO);
    ::close(saved_);
  }

 private:
  int saved_;
};
}  // namespace

TEST_CASE("stdout output writes .gor framing that reads back byte-exact") {
  file_test::TempDir dir;
  std::string path = dir.file("stdout.gor");
  std::string body = file_test::nasty_body();
  std::vector<MessagePtr> sent = {
      testing::make_message(Kind::request, "POST / HTTP/1.1\r\n\r\n" + body, "id1", 11),
      testing::make_message(Kind::response, "HTTP/1.1 200 OK\r\n\r\n", "id1", 12),
  };
  {
    StdoutToFile redirect(path);
    testing::StageHarness h(testing::linked_plugin("stdout"), Value::table({{"flush_interval", "20ms"}}));
    h.process(sent[0]);
    // The periodic flush writes it out while the stage idles.
    CHECK(h.wait_until([&] { return !file_test::read_bytes(path).empty(); }, 2000ms));
    h.process(sent[1]);
    h.flush();
    h.stop();
    CHECK(h.dropped("write_failed") == 0);
  }
  std::string expected;
  for (auto& m : sent) expected += gor::format_record(*m) + std::string(gor::kSeparator);
  CHECK(file_test::read_bytes(path) == expected);
}

TEST_CASE("a closed pipe is counted as lost records (write_failed), not a crash") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[0]);  // nobody reads
  std::fflush(stdout);
  int saved = ::dup(STDOUT_FILENO);
  ::dup2(fds[1], STDOUT_FILENO);
  ::close(fds[1]);
  auto previous = std::signal(SIGPIPE, SIG_IGN);  // as the runtime does
  {
    testing::StageHarness h(testing::linked_plugin("stdout"), Value::table({{"flush_interval", "0s"}}));
    // Larger than the buffer, so the write happens in process().
    h.process(testing::make_message(Kind::request, std::string(200 << 10, 'x')));
    h.process(testing::make_message(Kind::request, "GET / HTTP/1.1\r\n\r\n"));
    h.stop();
    CHECK(h.dropped("write_failed") == 2);
  }
  std::signal(SIGPIPE, previous);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
}
