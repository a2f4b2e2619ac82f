#include <doctest/doctest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "../../../sdk/file_size_limit.hpp"
#include "../../inputs/file/test_support.hpp"
#include "doppel/testing.hpp"

using namespace doppel;
using namespace std::chrono_literals;
using file_test::TempDir;

namespace {

testing::StageHarness output(const std::string& path, Value::Table extra = {}) {
  Value::Table options{{"path", Value(path)}};
  for (auto& entry : extra) options.push_back(entry);
  return testing::StageHarness(testing::linked_plugin("file"), Value(options));
}

// Reads a .gor file back with the SDK reader and codec (what the file input uses).
std::vector<Message> read_back(const std::string& path) {
  gor::RecordReader reader(path);
  gor::RecordReader::Record r;
  std::vector<Message> out;
  gor::RecordReader::Status s;
  while ((s = reader.next(r)) == gor::RecordReader::Status::record) {
    auto m = gor::parse_record(r.bytes);
    REQUIRE(m.has_value());
    out.push_back(std::move(*m));
  }
  CHECK(s == gor::RecordReader::Status::end);
  return out;
}

std::vector<MessagePtr> sample_messages() {
  std::vector<MessagePtr> out;
  std::string body = file_test::nasty_body();
  out.push_back(testing::make_message(
      Kind::request, "POST /bin HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
      "8e0f00000000000000000001", 1700000000000000000));
  Message response(Kind::response, "8e0f00000000000000000001", 1700000000005000000,
                   "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\0\r\n\n" + std::string(1, '\0'));
  response.latency_ns = 5000000;
  out.push_back(share(std::move(response)));
  Message replay(Kind::replay, "8e0f00000000000000000001", 1700000000009000000, "HTTP/1.1 500 Oops\r\n\r\n");
  replay.latency_ns = 3000000;
  out.push_back(share(std::move(replay)));
  out.push_back(testing::make_message(Kind::request, "", "empty-payload", 1));
  return out;
}

std::string expected_bytes(const std::vector<MessagePtr>& messages) {
  std::string bytes;
  for (auto& m : messages) bytes += gor::format_record(*m) + std::string(gor::kSeparator);
  return bytes;
}

void check_same(const std::vector<Message>& got, const std::vector<MessagePtr>& sent) {
  REQUIRE(got.size() == sent.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].kind == sent[i]->kind);
    CHECK(got[i].id == sent[i]->id);
    CHECK(got[i].timestamp_ns == sent[i]->timestamp_ns);
    CHECK(got[i].latency_ns == sent[i]->latency_ns);
    CHECK(got[i].payload == sent[i]->payload);
  }
}

}  // namespace

TEST_CASE("every kind is written as GoReplay records and reads back byte-exact") {
  TempDir dir;
  auto messages = sample_messages();
  {
    auto h = output(dir.file("out.gor"));
    for (auto& m : messages) h.process(m);
    h.flush();
    h.stop();
    CHECK(h.counter("records_written").value() == messages.size());
    CHECK(h.counter("files_opened").value() == 1);
  }
  CHECK(file_test::read_bytes(dir.file("out.gor")) == expected_bytes(messages));
  check_same(read_back(dir.file("out.gor")), messages);
}

TEST_CASE("a .gz path writes gzip that reads back byte-exact") {
  TempDir dir;
  auto messages = sample_messages();
  {
    auto h = output(dir.file("out.gor.gz"));
    for (auto& m : messages) h.process(m);
    h.stop();
  }
  std::string raw = file_test::read_bytes(dir.file("out.gor.gz"));
  REQUIRE(raw.size() > 10);
  CHECK(static_cast<unsigned char>(raw[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(raw[1]) == 0x8b);
  check_same(read_back(dir.file("out.gor.gz")), messages);
}

TEST_CASE("flush() puts everything on disk before stop") {
  TempDir dir;
  auto messages = sample_messages();
  auto h = output(dir.file("out.gor"), {{"flush_interval", "1h"}});
  for (auto& m : messages) h.process(m);
  CHECK(file_test::read_bytes(dir.file("out.gor")).empty());  // buffered
  h.flush();
  CHECK(file_test::read_bytes(dir.file("out.gor")) == expected_bytes(messages));
}

TEST_CASE("flush_interval pushes buffered records out while traffic pauses") {
  TempDir dir;
  auto h = output(dir.file("out.gor"), {{"flush_interval", "20ms"}});
  auto m = testing::make_message(Kind::request, "GET / HTTP/1.1\r\n\r\n", "a", 1);
  h.process(m);
  CHECK(h.wait_until([&] { return !file_test::read_bytes(dir.file("out.gor")).empty(); }, 2000ms));
  CHECK(file_test::read_bytes(dir.file("out.gor")) == expected_bytes({m}));
}

TEST_CASE("max_records starts a new chunk after N records, named like GoReplay's") {
  TempDir dir;
  std::vector<MessagePtr> messages;
  for (int i = 0; i < 7; ++i)
    messages.push_back(testing::make_message(Kind::request, "GET /" + std::to_string(i) + " HTTP/1.1\r\n\r\n",
                                             "id" + std::to_string(i), i));
  {
    auto h = output(dir.file("out.gor"), {{"max_records", 3}});
    for (auto& m : messages) h.process(m);
    h.stop();
    CHECK(h.counter("files_opened").value() == 3);
  }
  CHECK(read_back(dir.file("out_0.gor")).size() == 3);
  CHECK(read_back(dir.file("out_1.gor")).size() == 3);
  auto last = read_back(dir.file("out_2.gor"));
  REQUIRE(last.size() == 1);
  CHECK(last[0].id == "id6");
  CHECK_FALSE(std::filesystem::exists(dir.file("out.gor")));

  // A second run never overwrites: it continues after the highest existing index.
  {
    auto h = output(dir.file("out.gor"), {{"max_records", 3}});
    h.process(messages[0]);
    h.stop();
  }
  CHECK(read_back(dir.file("out_2.gor")).size() == 1);
  CHECK(read_back(dir.file("out_3.gor")).size() == 1);

  // With append, it keeps filling the last chunk.
  {
    auto h = output(dir.file("out.gor"), {{"max_records", 3}, {"append", true}});
    h.process(messages[1]);
    h.stop();
  }
  auto appended = read_back(dir.file("out_3.gor"));
  REQUIRE(appended.size() == 2);
  CHECK(appended[1].id == "id1");
}

TEST_CASE("size_limit keeps plain chunks within the limit") {
  TempDir dir;
  std::vector<MessagePtr> messages;
  for (int i = 0; i < 10; ++i)
    messages.push_back(
        testing::make_message(Kind::request, std::string(60, char('a' + i)), "id" + std::to_string(i), i));
  std::size_t one = gor::record_size(*messages[0]);  // every record has the same size
  {
    auto h = output(dir.file("s.gor"), {{"size_limit", static_cast<std::int64_t>(3 * one + one / 2)}});
    for (auto& m : messages) h.process(m);
    h.stop();
  }
  std::vector<std::size_t> counts;
  std::vector<Message> all;
  for (int i = 0; i < 4; ++i) {
    std::string path = dir.file("s_" + std::to_string(i) + ".gor");
    REQUIRE(std::filesystem::exists(path));
    CHECK(std::filesystem::file_size(path) <= 3 * one + one / 2);
    auto got = read_back(path);
    counts.push_back(got.size());
    for (auto& m : got) all.push_back(Message(m));
  }
  CHECK(counts == std::vector<std::size_t>{3, 3, 3, 1});
  check_same(all, messages);
}

TEST_CASE("size_limit with gzip rotates on compressed size") {
  TempDir dir;
  std::vector<MessagePtr> messages;
  // Incompressible-ish payloads so the compressed size grows steadily.
  std::uint32_t x = 12345;
  for (int i = 0; i < 40; ++i) {
    std::string payload(4096, '\0');
    for (auto& c : payload) {
      x = x * 1103515245u + 12345u;
      c = static_cast<char>(x >> 24);
    }
    messages.push_back(testing::make_message(Kind::request, std::move(payload), "id" + std::to_string(i), i));
  }
  {
    auto h = output(dir.file("z.gor.gz"), {{"size_limit", "64KiB"}});
    for (auto& m : messages) h.process(m);
    h.stop();
    CHECK(h.counter("files_opened").value() >= 2);
  }
  std::vector<Message> all;
  for (int i = 0; std::filesystem::exists(dir.file("z_" + std::to_string(i) + ".gor.gz")); ++i) {
    std::string path = dir.file("z_" + std::to_string(i) + ".gor.gz");
    CHECK(std::filesystem::file_size(path) < 64 * 1024 + 64 * 1024);  // within zlib's pending block
    for (auto& m : read_back(path)) all.push_back(Message(m));
  }
  check_same(all, messages);
}

TEST_CASE("an existing file is refused unless append or overwrite says what to do with it") {
  TempDir dir;
  auto messages = sample_messages();
  for (int run = 0; run < 2; ++run) {
    auto h = output(dir.file("a.gor"), {{"append", true}});
    h.process(messages[0]);
    h.stop();
  }
  CHECK(read_back(dir.file("a.gor")).size() == 2);
  // Neither: the run does not start, and the capture is untouched. (Checked when the file is
  // opened, not at validation: `doppel validate` and `doppel test` do not depend on what a
  // previous run left behind.)
  {
    auto h = output(dir.file("a.gor"));
    CHECK_THROWS_WITH(h.start(), doctest::Contains("a.gor already exists; set append = true to add to it, or "
                                                   "overwrite = true to replace it"));
  }
  CHECK(read_back(dir.file("a.gor")).size() == 2);
  CHECK_THROWS_WITH_AS(output(dir.file("a.gor"), {{"append", true}, {"overwrite", true}}),
                       doctest::Contains("exclude each other"), ConfigError);
  {
    auto h = output(dir.file("a.gor"), {{"overwrite", true}});
    h.process(messages[1]);
    h.stop();
  }
  CHECK(read_back(dir.file("a.gor")).size() == 1);
}

TEST_CASE("files are created 0600 unless `mode` says otherwise") {
  TempDir dir;
  mode_t saved = ::umask(022);
  auto mode_of = [](const std::string& path) { return std::filesystem::status(path).permissions(); };
  {
    auto h = output(dir.file("private.gor"));
    h.process(sample_messages()[0]);
    h.stop();
  }
  CHECK(mode_of(dir.file("private.gor")) == std::filesystem::perms(0600));
  {
    auto h = output(dir.file("shared.gor.gz"), {{"mode", "0640"}, {"max_records", 1}});
    for (auto& m : sample_messages()) h.process(m);
    h.stop();
  }
  for (int i = 0; i < 4; ++i)
    CHECK(mode_of(dir.file("shared_" + std::to_string(i) + ".gor.gz")) == std::filesystem::perms(0640));
  ::umask(saved);
  CHECK_THROWS_WITH_AS(output(dir.file("x.gor"), {{"mode", "0999"}}), doctest::Contains("octal"), ConfigError);
  CHECK_THROWS_WITH_AS(output(dir.file("x.gor"), {{"mode", "rw-r--r--"}}), doctest::Contains("octal"), ConfigError);
}

TEST_CASE("a symbolic link at the path is refused, whatever append and overwrite say") {
  TempDir dir;
  file_test::write_bytes(dir.file("victim"), "precious");
  std::filesystem::create_symlink(dir.file("victim"), dir.file("out.gor"));
  for (Value::Table extra : {Value::Table{}, Value::Table{{"append", true}}, Value::Table{{"overwrite", true}}}) {
    auto h = output(dir.file("out.gor"), extra);
    std::string expected =
        "output \"under_test\": " + dir.file("out.gor") + " is a symbolic link; doppel never writes through a link";
    CHECK_THROWS_WITH(h.start(), doctest::Contains(expected.c_str()));
  }
  CHECK(file_test::read_bytes(dir.file("victim")) == "precious");
  CHECK(std::filesystem::is_symlink(dir.file("out.gor")));
}

TEST_CASE("chunks never replace an existing file, whatever overwrite says") {
  TempDir dir;
  file_test::write_bytes(dir.file("c_0.gor"), "chunk of an earlier run");
  file_test::write_bytes(dir.file("victim"), "precious");
  {
    auto h = output(dir.file("c.gor"), {{"max_records", 1}, {"overwrite", true}});
    h.process(sample_messages()[0]);  // c_1.gor: after the highest existing index
    // Planted while the run goes on, where the next chunk would go.
    std::filesystem::create_symlink(dir.file("victim"), dir.file("c_2.gor"));
    h.process(sample_messages()[1]);
    h.process(sample_messages()[2]);
    h.stop();
    CHECK(h.counter("records_written").value() == 3);
  }
  CHECK(file_test::read_bytes(dir.file("c_0.gor")) == "chunk of an earlier run");
  CHECK(file_test::read_bytes(dir.file("victim")) == "precious");
  CHECK(read_back(dir.file("c_1.gor")).size() == 1);
  CHECK(read_back(dir.file("c_3.gor")).size() == 1);  // the name taken by the link is stepped over
  CHECK(read_back(dir.file("c_4.gor")).size() == 1);
}

TEST_CASE("disk full: records_written counts what the file holds, the rest is dropped as write_failed") {
  for (std::string name : {"full.gor", "full.gor.gz"}) {
    CAPTURE(name);
    TempDir dir;
    std::string path = dir.file(name);
    std::vector<MessagePtr> messages;
    std::uint32_t x = 7;
    for (int i = 0; i < 3000; ++i) {
      std::string payload = "POST /" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
      for (int j = 0; j < 400; ++j) {
        x = x * 1103515245u + 12345u;
        payload += static_cast<char>('a' + (x >> 24) % 26);
      }
      messages.push_back(testing::make_message(Kind::request, std::move(payload), "id" + std::to_string(i), i));
    }
    auto h = output(path, {{"flush_interval", "1h"}});
    h.start();
    {
      testing::FileSizeLimit limit(300 << 10);
      for (int i = 0; i < 2000; ++i) h.process(messages[static_cast<std::size_t>(i)]);
      h.flush();
      std::uint64_t written = h.counter("records_written").value();
      CHECK(written > 0);
      CHECK(h.dropped("write_failed") > 0);
      CHECK(written + h.dropped("write_failed") == 2000);
      CHECK(read_back(path).size() == written);  // whole records only, and no partial one at the end
      // Space returns: writing resumes where the file ends.
      limit.lift();
      for (int i = 2000; i < 3000; ++i) h.process(messages[static_cast<std::size_t>(i)]);
      h.stop();
      CHECK(h.counter("records_written").value() == written + 1000);
    }
    CHECK(h.counter("records_written").value() + h.dropped("write_failed") == 3000);
    auto back = read_back(path);
    CHECK(back.size() == h.counter("records_written").value());
    REQUIRE(!back.empty());
    CHECK(back.back().id == "id2999");
  }
}

TEST_CASE("name patterns expand from the time the file is opened") {
  TempDir dir;
  std::time_t before = std::time(nullptr);
  {
    auto h = output(dir.file("t-%Y%m%d-%H%M%S.gor"));
    h.process(sample_messages()[0]);
    h.stop();
  }
  std::time_t after = std::time(nullptr);
  std::vector<std::string> candidates;
  for (std::time_t t = before; t <= after; ++t)
    candidates.push_back(*gor::expand_time_pattern(dir.file("t-%Y%m%d-%H%M%S.gor"), t));
  std::size_t found = 0;
  for (auto& c : candidates)
    if (std::filesystem::exists(c)) found += read_back(c).size();
  CHECK(found == 1);
}

TEST_CASE("a new file starts when the expanded name changes") {
  TempDir dir;
  auto h = output(dir.file("s-%S.gor"));
  auto messages = sample_messages();
  h.process(messages[0]);
  std::this_thread::sleep_for(1100ms);  // the next second: a new name
  h.process(messages[1]);
  h.stop();
  CHECK(h.counter("files_opened").value() == 2);
  std::size_t files = 0;
  for (auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++files;
    CHECK(read_back(entry.path().string()).size() == 1);
  }
  CHECK(files == 2);
}

TEST_CASE("configuration and start errors are explicit") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(output(dir.file("x-%r.gor")), doctest::Contains("unsupported % pattern"), ConfigError);
  CHECK_THROWS_WITH_AS(output(dir.file("x.gor"), {{"max_records", -1}}), doctest::Contains("max_records"), ConfigError);
  CHECK_THROWS_WITH_AS(output(dir.file("no/such/dir/x.gor")), doctest::Contains("does not exist"), ConfigError);
  // A directory that goes away before the run starts: start() says which file.
  std::filesystem::create_directory(dir.file("gone"));
  auto h = output(dir.file("gone/x.gor"));
  std::filesystem::remove(dir.file("gone"));
  CHECK_THROWS_WITH(h.start(), doctest::Contains("gone/x.gor"));
}

TEST_CASE("a record's lease is released once the record is flushed to the file, not when buffered") {
  TempDir dir;
  auto h = output(dir.file("out.gor"), {{"flush_interval", "1h"}});
  std::atomic<int> released{0};
  {
    Message m(Kind::request, "a", 1, "GET / HTTP/1.1\r\n\r\n");
    m.lease = std::shared_ptr<const void>(nullptr, [&](const void*) { ++released; });
    h.process(share(std::move(m)));
  }
  CHECK(released == 0);  // buffered only: a crash now must not have acknowledged it
  CHECK(file_test::read_bytes(dir.file("out.gor")).empty());
  h.flush();
  CHECK(released == 1);
  CHECK(!file_test::read_bytes(dir.file("out.gor")).empty());
}

TEST_CASE("many held leases force a flush, so a source with a bounded window never stalls") {
  TempDir dir;
  auto h = output(dir.file("out.gor"), {{"flush_interval", "1h"}});
  std::atomic<int> released{0};
  for (int i = 0; i < 1024; ++i) {
    Message m(Kind::request, "id" + std::to_string(i), 1, "GET / HTTP/1.1\r\n\r\n");
    m.lease = std::shared_ptr<const void>(nullptr, [&](const void*) { ++released; });
    h.process(share(std::move(m)));
  }
  CHECK(released == 1024);
  CHECK(read_back(dir.file("out.gor")).size() == 1024);
}
