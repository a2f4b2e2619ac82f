// Capture files that are not what they should be (issue 15, item 5): refused at validation
// when they can be checked then (empty, bad magic, a header libpcap refuses), read up to the
// damage and counted when cut short, and an error of the input when standard input is not a
// capture at all.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "capture_file.hpp"
#include "doppel/testing.hpp"
#include "pcap_builder.hpp"

using namespace doppel;
using namespace pcap_builder;
using doppel::plugins::raw::capture_file_problem;

namespace {

const Address kClient = Address::v4("192.168.7.10");
const Address kServer = Address::v4("192.168.7.20");
constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;
constexpr std::int64_t kMs = 1'000'000;
const std::string kGet = "GET /a HTTP/1.1\r\nHost: svc\r\n\r\n";
const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "doppel-raw-errors-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}
std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Two exchanges and a third request on one connection.
Capture two_exchanges() {
  Capture c;
  Conversation conv(kClient, 41000, kServer, 80);
  std::int64_t t = kT0;
  for (auto& s : conv.handshake()) c.add(s, t += kMs);
  for (auto& s : {conv.client(kGet), conv.server(kOk), conv.client(kGet), conv.server(kOk), conv.client(kGet)})
    c.add(s, t += kMs);
  return c;
}

testing::StageHarness raw_on(const std::string& file, Value::Table extra = {}) {
  Value::Table options{{"file", file}, {"track_response", true}};
  for (auto& e : extra) options.push_back(e);
  return testing::StageHarness(testing::linked_plugin("raw"), Value(options));
}

}  // namespace

TEST_CASE("capture_file_problem names what is wrong from the first bytes") {
  TempDir dir;
  two_exchanges().write_pcap(dir.file("good.pcap"));
  two_exchanges().write_pcapng(dir.file("good.pcapng"));
  two_exchanges().write_pcap(dir.file("big-endian.pcap"), {.big_endian = true, .microseconds = true});
  for (const char* name : {"good.pcap", "good.pcapng", "big-endian.pcap"}) {
    CAPTURE(std::string(name));
    CHECK_FALSE(capture_file_problem(dir.file(name)).has_value());
  }
  write_bytes(dir.file("empty.pcap"), "");
  write_bytes(dir.file("text.pcap"), "hello, this is text\n");
  write_bytes(dir.file("gzip.pcap"), std::string("\x1f\x8b\x08\x00", 4) + std::string(100, 'z'));
  write_bytes(dir.file("gor.pcap"), "1 8e0f2a5c0000000000000001 1700000000000000000 0\nGET / HTTP/1.1\r\n\r\n");
  write_bytes(dir.file("short.pcap"), "\xd4\xc3");
  std::string good = read_bytes(dir.file("good.pcap"));
  write_bytes(dir.file("header-cut.pcap"), good.substr(0, 10));  // the right magic, a cut header
  std::string other_link = good;
  other_link[20] = 147;  // DLT_USER0: nothing doppel decodes
  write_bytes(dir.file("user0.pcap"), other_link);
  struct Case {
    const char* name;
    std::string says;
  };
  for (const Case& c : {Case{"empty.pcap", "file " + dir.file("empty.pcap") + " is empty"},
                        Case{"text.pcap", "file " + dir.file("text.pcap") +
                                              ": not a pcap or pcapng file (starts with 0x68656c6c)"},
                        Case{"gzip.pcap", "(starts with 0x1f8b0800; it is gzip-compressed: decompress it first)"},
                        Case{"gor.pcap", "it looks like a GoReplay .gor file"},
                        Case{"short.pcap", "not a pcap or pcapng file (starts with 0xd4c3)"},
                        Case{"header-cut.pcap", "truncated dump file"},
                        Case{"user0.pcap", "is not one doppel decodes"},
                        Case{"missing.pcap", "cannot read capture file"}}) {
    CAPTURE(std::string(c.name));
    auto problem = capture_file_problem(dir.file(c.name));
    REQUIRE(problem.has_value());
    CHECK(problem->find(c.says) != std::string::npos);
    MESSAGE(*problem);
  }
  auto directory = capture_file_problem(dir.file(""));
  REQUIRE(directory.has_value());
  CHECK(directory->find("is a directory") != std::string::npos);
  // A pipe is not read at validation: its bytes belong to the capture.
  CHECK_FALSE(capture_file_problem("/dev/stdin").has_value());
}

TEST_CASE("the raw input refuses an empty or non-capture file at validation, naming the option") {
  TempDir dir;
  write_bytes(dir.file("empty.pcap"), "");
  write_bytes(dir.file("junk.pcap"), "\x01\x02\x03\x04 not a capture");
  CHECK_THROWS_WITH_AS(raw_on(dir.file("empty.pcap")), doctest::Contains("is empty"), ConfigError);
  CHECK_THROWS_WITH_AS(raw_on(dir.file("junk.pcap")),
                       doctest::Contains("not a pcap or pcapng file (starts with 0x01020304)"), ConfigError);
  try {
    raw_on(dir.file("junk.pcap"));
  } catch (const ConfigError& e) {
    CHECK(e.key() == "file");
  }
}

TEST_CASE("a capture cut mid-frame: the messages before go on, the cut is one truncated_input drop") {
  TempDir dir;
  struct Flavour {
    const char* name;
    bool pcapng;
    bool big_endian;  // read by libpcap instead of mapped
  };
  for (const Flavour& f : {Flavour{"mapped.pcap", false, false}, Flavour{"swapped.pcap", false, true},
                           Flavour{"cut.pcapng", true, false}}) {
    for (int threads : {1, 3}) {
      CAPTURE(std::string(f.name));
      CAPTURE(threads);
      std::string path = dir.file(f.name);
      if (f.pcapng) two_exchanges().write_pcapng(path);
      else two_exchanges().write_pcap(path, {.big_endian = f.big_endian, .microseconds = f.big_endian});
      std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);  // into the last frame
      auto h = raw_on(path, {{"threads", threads}});  // validation reads only the header: accepted
      h.run();                                        // no throw: partly readable is not unreadable
      auto out = h.emitted();
      REQUIRE(out.size() == 4);
      CHECK(out[2]->payload == kGet);
      CHECK(out[3]->payload == kOk);
      CHECK(h.dropped("truncated_input") == 1);
      CHECK(h.failed("capture_error") == 0);
    }
  }
}

TEST_CASE("a bogus record length part way: the messages before go on, counted as corrupt_input") {
  TempDir dir;
  std::string path = dir.file("bogus.pcap");
  Capture c = two_exchanges();
  c.write_pcap(path);
  std::string bytes = read_bytes(path);
  // The last record's caplen (its header starts 16 + the frame's size before the end).
  std::size_t last = bytes.size() - c.records().back().bytes.size() - 16;
  std::uint32_t huge = 0x7fffffff;
  std::memcpy(&bytes[last + 8], &huge, 4);
  write_bytes(path, bytes);
  auto h = raw_on(path, {{"threads", 1}});
  h.run();
  CHECK(h.emitted().size() == 4);
  CHECK(h.dropped("corrupt_input") == 1);
}

TEST_CASE("standard input that is not a capture fails the input with a clear error") {
  for (std::string bytes : {std::string("GET / HTTP/1.1\r\n\r\n"), std::string()}) {
    CAPTURE(bytes.size());
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    int saved_stdin = ::dup(0);
    ::dup2(fds[0], 0);
    ::close(fds[0]);
    std::thread writer([&] {
      (void)!::write(fds[1], bytes.data(), bytes.size());
      ::close(fds[1]);
    });
    auto h = raw_on("-");  // cannot be checked before it is read
    std::string error;
    try {
      h.run();
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    writer.join();
    ::dup2(saved_stdin, 0);
    ::close(saved_stdin);
    MESSAGE(error);
    CHECK(error.find("cannot read standard input as a pcap or pcapng capture") != std::string::npos);
    CHECK(h.emitted().empty());
  }
}
