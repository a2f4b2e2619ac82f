#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <sstream>
#include <thread>

#include "doppel/testing.hpp"
#include "test_support.hpp"

using namespace doppel;
using namespace std::chrono_literals;
using file_test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;
constexpr std::int64_t kMs = 1'000'000;

testing::StageHarness input(const std::string& path, Value::Table extra = {}) {
  Value::Table options{{"path", Value(path)}};
  for (auto& entry : extra) options.push_back(entry);
  return testing::StageHarness(testing::linked_plugin("file"), Value(options));
}

// Runs the input on a thread and records when each message came out.
struct TimedRun {
  std::vector<Clock::duration> at;  // since the run started, per emitted message
  Clock::duration total{};
};

TimedRun run_timed(testing::StageHarness& h) {
  TimedRun result;
  std::atomic<bool> done{false};
  auto started = Clock::now();
  std::thread runner([&] {
    h.run();
    done = true;
  });
  std::size_t seen = 0;
  while (!done) {
    std::size_t now_seen = h.emitted().size();
    for (; seen < now_seen; ++seen) result.at.push_back(Clock::now() - started);
    std::this_thread::sleep_for(200us);
  }
  runner.join();
  result.total = Clock::now() - started;
  for (std::size_t n = h.emitted().size(); seen < n; ++seen) result.at.push_back(result.total);
  return result;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

TEST_CASE("file input emits every record with its kind, id, timestamps and bytes") {
  TempDir dir;
  std::string body = "POST /up HTTP/1.1\r\nContent-Length: 300\r\n\r\n" + file_test::nasty_body();
  file_test::write_gor(dir.file("a.gor"),
                       {file_test::request("aaaa", kT0, body), file_test::response("aaaa", kT0 + 5 * kMs, 4 * kMs)});
  auto h = input(dir.file("a.gor"), {{"max_speed", true}});
  h.run();
  auto out = h.emitted();
  REQUIRE(out.size() == 2);
  CHECK(out[0]->kind == Kind::request);
  CHECK(out[0]->id == "aaaa");
  CHECK(out[0]->timestamp_ns == kT0);
  CHECK(out[0]->payload == body);
  CHECK(out[0]->meta.stage.empty());  // the runtime fills it in
  CHECK(out[1]->kind == Kind::response);
  CHECK(out[1]->latency_ns == 4 * kMs);
  CHECK(out[1]->timestamp_ns == kT0 + 5 * kMs);
  CHECK(h.drops().empty());
}

TEST_CASE("file input accepts GoReplay's older three-field headers") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  file_test::write_bytes(dir.file("old.gor"), "1 abc 1500000000000000000\nGET / HTTP/1.1\r\n\r\n" + sep +
                                                  "2 abc 1500000000000000001\nHTTP/1.1 204 No Content\r\n\r\n" + sep);
  auto h = input(dir.file("old.gor"), {{"max_speed", true}});
  h.run();
  auto out = h.emitted();
  REQUIRE(out.size() == 2);
  CHECK(out[0]->timestamp_ns == 1500000000000000000);
  CHECK(out[0]->latency_ns == 0);
  CHECK(out[1]->payload == "HTTP/1.1 204 No Content\r\n\r\n");
}

TEST_CASE("a corrupt record in the middle is skipped and counted; the rest of the file is read") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  std::string good1 = gor::format_record(file_test::request("a1", kT0));
  std::string good2 = gor::format_record(file_test::request("a2", kT0 + 1));
  std::string good3 = gor::format_record(file_test::request("a3", kT0 + 2));
  std::string file = good1 + sep + "9 garbage header\nxx" + sep + "not even a header" + sep + good2 + sep + good3 +
                     sep + "1 a4 " + std::to_string(kT0 + 3) + " 0\nGET /cut-off HT";  // truncated at the end
  file_test::write_bytes(dir.file("bad.gor"), file);
  auto h = input(dir.file("bad.gor"), {{"max_speed", true}});
  h.run();
  auto out = h.emitted();
  REQUIRE(out.size() == 3);
  CHECK(out[0]->id == "a1");
  CHECK(out[1]->id == "a2");
  CHECK(out[2]->id == "a3");
  CHECK(h.dropped("corrupt_record") == 2);   // two bad headers
  CHECK(h.dropped("truncated_input") == 1);  // and the tail the file ends inside
  CHECK(h.counter("read_errors").value() == 1);
}

TEST_CASE("a glob reads every matching file in chunk order, gzip transparently") {
  TempDir dir;
  file_test::write_gor(dir.file("t_10.gor"), {file_test::request("r10", kT0 + 10)});
  file_test::write_gor(dir.file("t_2.gor.gz"), {file_test::request("r2", kT0 + 2)});
  file_test::write_gor(dir.file("t_1.gor"), {file_test::request("r1", kT0 + 1)});
  // A gzip file whose name says nothing about it is still read as gzip.
  file_test::write_gor(dir.file("t_3.tmp.gz"), {file_test::request("r3", kT0 + 3)});
  std::rename(dir.file("t_3.tmp.gz").c_str(), dir.file("t_3.gor").c_str());
  auto h = input(dir.file("t_*.gor*"), {{"max_speed", true}});
  h.run();
  auto out = h.emitted();
  REQUIRE(out.size() == 4);
  CHECK(out[0]->id == "r1");
  CHECK(out[1]->id == "r2");
  CHECK(out[2]->id == "r3");
  CHECK(out[3]->id == "r10");
  CHECK(h.counter("files_read").value() == 4);
}

TEST_CASE("speed 200% halves the recorded gaps between requests") {
  TempDir dir;
  // Gaps of 200 ms and 100 ms; a response between them does not move the schedule.
  file_test::write_gor(dir.file("t.gor"),
                       {file_test::request("r1", kT0), file_test::response("r1", kT0 + 150 * kMs, 150 * kMs),
                        file_test::request("r2", kT0 + 200 * kMs), file_test::request("r3", kT0 + 300 * kMs)});
  auto h = input(dir.file("t.gor"), {{"speed", "200%"}});
  auto run = run_timed(h);
  REQUIRE(run.at.size() == 4);
  double gap1 = ms(run.at[2] - run.at[0]);
  double gap2 = ms(run.at[3] - run.at[2]);
  CHECK(gap1 == doctest::Approx(100).epsilon(0.25));
  CHECK(gap2 == doctest::Approx(50).epsilon(0.35));
  CHECK(ms(run.total) < 200);
  CHECK(ms(run.total) > 140);
}

TEST_CASE("speed 100% keeps the recorded gaps and the path's |50% suffix slows down") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"), {file_test::request("r1", kT0), file_test::request("r2", kT0 + 60 * kMs)});
  {
    auto h = input(dir.file("t.gor"));
    auto run = run_timed(h);
    REQUIRE(run.at.size() == 2);
    CHECK(ms(run.at[1] - run.at[0]) == doctest::Approx(60).epsilon(0.3));
  }
  {
    auto h = input(dir.file("t.gor") + "|50%");
    auto run = run_timed(h);
    REQUIRE(run.at.size() == 2);
    CHECK(ms(run.at[1] - run.at[0]) == doctest::Approx(120).epsilon(0.25));
  }
}

TEST_CASE("a fixed rate spaces requests evenly whatever their timestamps") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"),
                       {file_test::request("r1", kT0), file_test::request("r2", kT0 + 3'600'000 * kMs),
                        file_test::request("r3", kT0 + 3'600'001 * kMs)});
  auto h = input(dir.file("t.gor"), {{"speed", "20/s"}});
  auto run = run_timed(h);
  REQUIRE(run.at.size() == 3);
  CHECK(ms(run.total) == doctest::Approx(100).epsilon(0.35));
}

TEST_CASE("max_speed ignores recorded gaps") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"),
                       {file_test::request("r1", kT0), file_test::request("r2", kT0 + 3'600'000 * kMs)});
  auto h = input(dir.file("t.gor"), {{"max_speed", true}});
  auto run = run_timed(h);
  CHECK(run.at.size() == 2);
  CHECK(ms(run.total) < 500);
}

TEST_CASE("max_wait caps every single wait") {
  TempDir dir;
  // Two ten-minute pauses and one of 30 ms, which stays as it is.
  file_test::write_gor(dir.file("t.gor"), {file_test::request("r1", kT0), file_test::request("r2", kT0 + 600'000 * kMs),
                                           file_test::request("r3", kT0 + 1'200'000 * kMs),
                                           file_test::request("r4", kT0 + 1'200'030 * kMs)});
  auto h = input(dir.file("t.gor"), {{"max_wait", "60ms"}});
  auto run = run_timed(h);
  REQUIRE(run.at.size() == 4);
  CHECK(ms(run.at[1] - run.at[0]) == doctest::Approx(60).epsilon(0.35));
  CHECK(ms(run.at[2] - run.at[1]) == doctest::Approx(60).epsilon(0.35));
  CHECK(ms(run.total) == doctest::Approx(150).epsilon(0.3));
}

TEST_CASE("out-of-order requests are emitted without waiting and counted") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"), {file_test::request("r1", kT0 + 50 * kMs), file_test::request("r2", kT0),
                                           file_test::request("r3", kT0 + 80 * kMs)});
  auto h = input(dir.file("t.gor"));
  auto run = run_timed(h);
  REQUIRE(run.at.size() == 3);
  CHECK(ms(run.at[1] - run.at[0]) < 15);
  CHECK(ms(run.at[2] - run.at[1]) == doctest::Approx(30).epsilon(0.5));  // from the newest, r1
  CHECK(h.counter("out_of_order").value() == 1);
}

TEST_CASE("loop starts again at the end until stopped, and a stop interrupts the wait") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"), {file_test::request("r1", kT0), file_test::request("r2", kT0 + 40 * kMs)});
  auto h = input(dir.file("t.gor"), {{"loop", true}});
  std::thread runner([&] { h.run(); });
  std::this_thread::sleep_for(250ms);
  auto asked = Clock::now();
  h.request_stop();
  runner.join();
  CHECK(ms(Clock::now() - asked) < 100);
  auto out = h.emitted();
  // Each pass takes ~40 ms (the next pass starts at once): about 6 passes in 250 ms.
  CHECK(out.size() >= 6);
  CHECK(out.size() <= 16);
  for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i]->id == (i % 2 == 0 ? "r1" : "r2"));
  CHECK(h.counter("files_read").value() >= 3);
}

TEST_CASE("a stop request ends a long recorded pause promptly") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"),
                       {file_test::request("r1", kT0), file_test::request("r2", kT0 + 3'600'000 * kMs)});
  auto h = input(dir.file("t.gor"));
  std::thread runner([&] { h.run(); });
  std::this_thread::sleep_for(50ms);
  auto asked = Clock::now();
  h.request_stop();
  runner.join();
  CHECK(ms(Clock::now() - asked) < 100);
  CHECK(h.emitted().size() == 1);
}

TEST_CASE("loop over files that yield nothing stops instead of spinning") {
  TempDir dir;
  // A valid start, cut before its separator: readable, but it yields no record.
  file_test::write_bytes(dir.file("cut.gor"), "1 a 1700000000000000000 0\nGET /cut-off");
  file_test::write_bytes(dir.file("empty.gor"), "");
  for (const char* name : {"cut.gor", "empty.gor"}) {
    CAPTURE(std::string(name));
    auto h = input(dir.file(name), {{"loop", true}, {"max_speed", true}});
    h.run();  // returns by itself
    CHECK(h.emitted().empty());
    CHECK(h.dropped("truncated_input") == (std::string(name) == "cut.gor" ? 1 : 0));
  }
}

TEST_CASE("kinds selects which records are emitted") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"), {file_test::request("r1", kT0), file_test::response("r1", kT0 + 1, 1)});
  auto h = input(dir.file("t.gor"), {{"max_speed", true}, {"kinds", Value::array({"request"})}});
  h.run();
  REQUIRE(h.emitted().size() == 1);
  CHECK(h.emitted()[0]->kind == Kind::request);
  CHECK(h.dropped("kind_not_selected") == 1);
  REQUIRE(h.stage().produces().has_value());
  CHECK(*h.stage().produces() == KindSet{Kind::request});
}

TEST_CASE("dry_run prints count, time span and the expected duration at the configured speed") {
  TempDir dir;
  std::string sep(gor::kSeparator);
  file_test::write_gor(dir.file("t_0.gor"),
                       {file_test::request("r1", kT0), file_test::response("r1", kT0 + 5 * kMs, 5 * kMs),
                        file_test::request("r2", kT0 + 4000 * kMs)});
  file_test::write_bytes(dir.file("t_1.gor"),
                         gor::format_record(file_test::request("r3", kT0 + 10'000 * kMs)) + sep + "garbage" + sep);
  auto h = input(dir.file("t_*.gor"), {{"speed", "200%"}, {"max_wait", "2500ms"}});
  std::ostringstream out;
  CHECK(h.stage().dry_run(out));
  std::string text = out.str();
  INFO(text);
  CHECK(text.find("2 files") != std::string::npos);
  CHECK(text.find("records: 4 (3 requests, 1 responses, 0 replays)") != std::string::npos);
  CHECK(text.find("records skipped (corrupt, too large or cut off): 1") != std::string::npos);
  CHECK(text.find("t_1.gor at byte offset 70: corrupt") != std::string::npos);
  CHECK(text.find("requests recorded over 10s") != std::string::npos);
  // Gaps 4 s and 6 s at 200% are 2 s and 3 s; max_wait caps the second to 2.5 s.
  CHECK(text.find("expected duration at 200%: 4.5s") != std::string::npos);
  CHECK(text.find("waits capped by max_wait 2.5s: 1") != std::string::npos);
  CHECK(h.emitted().empty());  // nothing was emitted
}

TEST_CASE("a file whose name holds '|' is read as a file, not as a speed suffix") {
  TempDir dir;
  file_test::write_gor(dir.file("a|b.gor"), {file_test::request("r1", kT0)});
  auto h = input(dir.file("a|b.gor"), {{"max_speed", true}});
  h.run();
  CHECK(h.emitted().size() == 1);
}

TEST_CASE("configuration errors name the option") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"), {file_test::request("r1", kT0)});
  auto fails = [&](Value::Table options, const std::string& text) {
    CHECK_THROWS_WITH_AS(testing::StageHarness(testing::linked_plugin("file"), Value(options)),
                         doctest::Contains(text.c_str()), ConfigError);
  };
  fails({{"path", Value(dir.file("missing-*.gor"))}}, "no file matches");
  fails({{"path", Value(dir.file("t.gor"))}, {"speed", "0%"}}, "above zero");
  fails({{"path", Value(dir.file("t.gor") + "|200%")}, {"speed", "50%"}}, "speed is given twice");
  fails({{"path", Value(dir.file("t.gor") + "|fast")}}, "invalid rate");
  fails({{"path", Value(dir.file("t.gor"))}, {"kinds", Value::array({"requests!"})}}, "unknown kind");
  fails({{"path", Value(dir.file("t.gor"))}, {"max_record_size", "0B"}}, "max_record_size must be above zero");
  fails({{"path", Value(dir.file("t.gor"))}, {"max_record_size", "5GiB"}}, "at most 4GiB");
}

// ---- Files that are not what they should be (issue 15, items 3 and 5) ----

TEST_CASE("a file that is not a .gor file is refused at validation, named, with what was expected") {
  TempDir dir;
  std::string noise;
  for (int i = 0; i < 5000; ++i) noise += static_cast<char>((i * 131 + 7) % 251);
  file_test::write_bytes(dir.file("noise.gor"), noise);
  file_test::write_bytes(dir.file("noise.gor.gz"), std::string("\x1f\x8b\x08\x00", 4) + noise);
  file_test::write_gor(dir.file("good_1.gor"), {file_test::request("r1", kT0)});
  file_test::write_bytes(dir.file("good_2.gor"), noise);
  auto refused = [&](const std::string& path, const std::string& text) {
    CAPTURE(path);
    CHECK_THROWS_WITH_AS(input(path), doctest::Contains(text.c_str()), ConfigError);
  };
  refused(dir.file("noise.gor"), dir.file("noise.gor") + " is not a .gor file (expected a first line");
  refused(dir.file("noise.gor.gz"), "does not decompress");
  // In a glob, one bad file is enough: it is named.
  refused(dir.file("good_*.gor"), dir.file("good_2.gor") + " is not a .gor file");
}

TEST_CASE("an empty file is a recording of nothing: accepted, read as no records, nothing dropped") {
  TempDir dir;
  file_test::write_bytes(dir.file("rec_1.gor"), "");
  file_test::write_gor(dir.file("rec_2.gor"), {file_test::request("r1", kT0)});
  auto h = input(dir.file("rec_*.gor"), {{"max_speed", true}});
  h.run();
  REQUIRE(h.emitted().size() == 1);
  CHECK(h.drops().empty());
  CHECK(h.counter("read_errors").value() == 0);
  auto alone = input(dir.file("rec_1.gor"), {{"max_speed", true}});
  alone.run();  // no throw: empty is not unreadable
  CHECK(alone.emitted().empty());
  CHECK(alone.drops().empty());
}

TEST_CASE("max_record_size: a larger record is skipped and counted, the records around it are read") {
  TempDir dir;
  file_test::write_gor(dir.file("big.gor"), {file_test::request("r1", kT0, "GET /small HTTP/1.1\r\n\r\n"),
                                             file_test::request("r2", kT0 + 1, std::string(5000, 'x')),
                                             file_test::request("r3", kT0 + 2, std::string(4096, 'y'))});
  auto h = input(dir.file("big.gor"), {{"max_speed", true}, {"max_record_size", "4KiB"}});
  h.run();
  auto out = h.emitted();
  REQUIRE(out.size() == 2);
  CHECK(out[0]->id == "r1");
  CHECK(out[1]->id == "r3");  // exactly at the bound: kept
  CHECK(out[1]->payload.size() == 4096);
  CHECK(h.dropped("record_too_large") == 1);
}

TEST_CASE("a cut gzip file: the records before the cut are emitted, the cut is counted as truncated_input") {
  TempDir dir;
  std::vector<Message> many;
  for (int i = 0; i < 2000; ++i)
    many.push_back(file_test::request("id" + std::to_string(i), kT0 + i, std::string(200, char('a' + i % 26))));
  file_test::write_gor(dir.file("cut.gor.gz"), many);
  std::string raw = file_test::read_bytes(dir.file("cut.gor.gz"));
  file_test::write_bytes(dir.file("cut.gor.gz"), raw.substr(0, raw.size() / 2));
  auto h = input(dir.file("cut.gor.gz"), {{"max_speed", true}});
  h.run();
  auto out = h.emitted();
  CHECK(out.size() > 0);
  CHECK(out.size() < 2000);
  for (std::size_t i = 0; i < out.size(); ++i) CHECK(out[i]->id == "id" + std::to_string(i));
  CHECK(h.dropped("truncated_input") == 1);
  CHECK(h.counter("read_errors").value() == 1);
}

TEST_CASE("a file spoiled after validation: skipped and counted; when no file is left readable the run fails") {
  TempDir dir;
  file_test::write_gor(dir.file("s_1.gor"), {file_test::request("r1", kT0)});
  file_test::write_gor(dir.file("s_2.gor"), {file_test::request("r2", kT0 + 1)});
  std::string noise(3000, '\x8f');
  SUBCASE("one of two") {
    auto h = input(dir.file("s_*.gor"), {{"max_speed", true}});  // validated while both are good
    file_test::write_bytes(dir.file("s_1.gor"), noise);
    h.run();
    REQUIRE(h.emitted().size() == 1);
    CHECK(h.emitted()[0]->id == "r2");
    CHECK(h.dropped("unreadable_file") == 1);
    CHECK(h.counter("read_errors").value() == 1);
  }
  SUBCASE("every one") {
    auto h = input(dir.file("s_*.gor"), {{"max_speed", true}});
    file_test::write_bytes(dir.file("s_1.gor"), noise);
    file_test::write_bytes(dir.file("s_2.gor"), "GET / HTTP/1.1\r\n\r\n");
    CHECK_THROWS_WITH_AS(h.run(), doctest::Contains("none of the 2 files matching"), std::runtime_error);
    CHECK(h.emitted().empty());
    CHECK(h.dropped("unreadable_file") == 2);
  }
  SUBCASE("the only one") {
    auto h = input(dir.file("s_1.gor"), {{"max_speed", true}});
    file_test::write_bytes(dir.file("s_1.gor"), noise);
    CHECK_THROWS_WITH_AS(h.run(), doctest::Contains("could not be read"), std::runtime_error);
    CHECK(h.dropped("unreadable_file") == 1);
  }
  SUBCASE("gone") {
    auto h = input(dir.file("s_*.gor"), {{"max_speed", true}});
    std::filesystem::remove(dir.file("s_1.gor"));
    std::filesystem::remove(dir.file("s_2.gor"));
    CHECK_THROWS_WITH_AS(h.run(), doctest::Contains("no file matches"), std::runtime_error);
  }
}

namespace {
// A downstream that takes 40 ms per message: the input waits (back-pressure) and falls behind.
class SlowDownstream : public testing::StageHarness {
 public:
  using StageHarness::StageHarness;
  bool emit(MessagePtr message) override {
    std::this_thread::sleep_for(40ms);
    return StageHarness::emit(std::move(message));
  }
};
}  // namespace

TEST_CASE("lag_ms shows how far behind schedule a slowed input is, and it catches up without waiting") {
  TempDir dir;
  std::vector<Message> records;
  for (int i = 0; i < 5; ++i) records.push_back(file_test::request("r" + std::to_string(i), kT0 + i * 10 * kMs));
  file_test::write_gor(dir.file("t.gor"), records);
  SlowDownstream h(testing::linked_plugin("file"), Value::table({{"path", Value(dir.file("t.gor"))}}));
  h.start();
  std::atomic<bool> done{false};
  std::int64_t max_lag = 0;
  auto started = Clock::now();
  std::thread runner([&] {
    h.run();
    done = true;
  });
  while (!done) {
    max_lag = std::max(max_lag, h.gauge("lag_ms").value());
    std::this_thread::sleep_for(1ms);
  }
  runner.join();
  auto total = ms(Clock::now() - started);
  CHECK(h.emitted().size() == 5);
  // The 5th request was due at 40 ms and went out after 4 slow emits (160 ms): 120 ms late.
  CHECK(max_lag >= 90);
  CHECK(max_lag <= 200);
  // No recorded gap was added on top of the slowness: 5 x 40 ms, not 5 x 40 + 40.
  CHECK(total == doctest::Approx(200).epsilon(0.25));
  CHECK(h.gauge("lag_ms").value() == 0);  // reset when the input is done
}

TEST_CASE("files from several hosts are merged by timestamp; order = name reads them one after another") {
  TempDir dir;
  file_test::write_gor(dir.file("host-a.gor"),
                       {file_test::request("a0", kT0), file_test::response("a0", kT0 + 5, 5),
                        file_test::request("a20", kT0 + 20), file_test::request("a40", kT0 + 40)});
  file_test::write_gor(dir.file("host-b.gor.gz"),
                       {file_test::request("b10", kT0 + 10), file_test::request("b30", kT0 + 30)});
  // A file without records (a host that captured nothing) does not disturb the merge.
  file_test::write_bytes(dir.file("host-c.gor"), "");
  auto ids = [](testing::StageHarness& h) {
    std::vector<std::string> out;
    for (auto& m : h.emitted()) out.push_back(m->id);
    return out;
  };
  {
    auto h = input(dir.file("host-*"), {{"max_speed", true}});
    h.run();
    CHECK(ids(h) == std::vector<std::string>{"a0", "a0", "b10", "a20", "b30", "a40"});
    CHECK(h.drops().empty());
    CHECK(h.counter("out_of_order").value() == 0);
  }
  {
    auto h = input(dir.file("host-*"), {{"max_speed", true}, {"order", "name"}});
    h.run();
    CHECK(ids(h) == std::vector<std::string>{"a0", "a0", "a20", "a40", "b10", "b30"});
    CHECK(h.counter("out_of_order").value() == 2);  // b10 and b30, both older than a40
  }
}

TEST_CASE("a chunked capture merged by timestamp reads in sequence") {
  TempDir dir;
  std::vector<std::string> expected;
  for (int chunk = 0; chunk < 12; ++chunk) {
    std::vector<Message> records;
    for (int i = 0; i < 3; ++i) {
      std::string id = "c" + std::to_string(chunk) + "-" + std::to_string(i);
      records.push_back(file_test::request(id, kT0 + chunk * 100 + i));
      expected.push_back(id);
    }
    file_test::write_gor(dir.file("cap_" + std::to_string(chunk) + ".gor"), records);
  }
  auto h = input(dir.file("cap_*.gor"), {{"max_speed", true}});
  h.run();
  std::vector<std::string> got;
  for (auto& m : h.emitted()) got.push_back(m->id);
  CHECK(got == expected);
  CHECK(h.counter("files_read").value() == 12);
}

namespace {
// A runtime that signals shutdown through the context only, not through the stop token.
class ContextOnlyStop : public testing::StageHarness {
 public:
  using StageHarness::StageHarness;
  bool stopping() const override { return stopping_; }
  std::atomic<bool> stopping_{false};
};
}  // namespace

TEST_CASE("a wait also ends when shutdown is signalled through the context") {
  TempDir dir;
  file_test::write_gor(dir.file("t.gor"),
                       {file_test::request("r1", kT0), file_test::request("r2", kT0 + 3'600'000 * kMs)});
  ContextOnlyStop h(testing::linked_plugin("file"), Value::table({{"path", Value(dir.file("t.gor"))}}));
  std::thread runner([&] { h.run(); });
  std::this_thread::sleep_for(50ms);
  auto asked = Clock::now();
  h.stopping_ = true;
  runner.join();
  CHECK(ms(Clock::now() - asked) < 250);
  CHECK(h.emitted().size() == 1);
}

TEST_CASE("a named pipe is not probed: its bytes are read once, by the replay, none lost") {
  TempDir dir;
  std::string fifo = dir.file("pipe.gor");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto h = input(fifo, {{"max_speed", true}});  // validation must neither block nor read it
  std::string bytes = gor::format_record(file_test::request("p1", kT0)) + std::string(gor::kSeparator) +
                      gor::format_record(file_test::request("p2", kT0 + 1)) + std::string(gor::kSeparator);
  std::thread writer([&] {
    int fd = ::open(fifo.c_str(), O_WRONLY);
    if (fd < 0) return;
    (void)!::write(fd, bytes.data(), bytes.size());
    ::close(fd);
  });
  h.run();
  writer.join();
  REQUIRE(h.emitted().size() == 2);
  CHECK(h.emitted()[0]->id == "p1");
  CHECK(h.emitted()[1]->id == "p2");
  CHECK(h.drops().empty());
}
