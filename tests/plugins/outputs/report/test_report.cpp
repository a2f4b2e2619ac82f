#include <doctest/doctest.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "doppel/json_writer.hpp"
#include "doppel/testing.hpp"
#include "report_verdicts.hpp"
#include "../../../sdk/file_size_limit.hpp"

using namespace doppel;
using namespace doppel::report_test;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("doppel-report-test-" + name + "-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("report writes one JSON line per verdict, the HTML report, and counts bad verdicts") {
  auto dir = temp_dir("jsonl");
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"jsonl", (dir / "v.jsonl").string()}, {"html", (dir / "r.html").string()},
                                        {"summary", false}}));
  feed(h);
  h.process(share(Message(Kind::verdict, "bad", 0, "{not json")));
  h.process(testing::make_message(Kind::request, "GET / HTTP/1.1\r\n\r\n"));
  h.flush();
  h.stop();
  std::string jsonl = read(dir / "v.jsonl");
  CHECK(std::count(jsonl.begin(), jsonl.end(), '\n') == 100);
  CHECK(jsonl.find("\"verdict\":\"mismatch\"") != std::string::npos);
  CHECK(h.failed("invalid_verdict") == 1);
  CHECK(h.dropped("not_a_verdict") == 1);
  std::string html = read(dir / "r.html");
  CHECK(html.starts_with("<!DOCTYPE html>"));
  // The data block cannot be closed early by a body containing </script>.
  auto data_at = html.find("id=\"report-data\">");
  REQUIRE(data_at != std::string::npos);
  auto data_end = html.find("</script>", data_at);
  CHECK(html.substr(data_at, data_end - data_at).find("\\u003c/script\\u003e") != std::string::npos);
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));  // no other URLs: nothing to fetch
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("\"total\":100") != std::string::npos);
  CHECK(html.find("results.hint_list") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("fail_if: a missed goal is reported once to the runtime, a met one is not") {
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"summary", false},
                                        {"fail_if", Value::array({"mismatch_rate > 1%", "warn_rate > 10%",
                                                                  "p95_latency_ratio > 1.2", "total < 10"})}}));
  feed(h);
  h.flush();
  h.flush();
  h.stop();
  auto missed = h.goals_missed();
  REQUIRE(missed.size() == 2);
  CHECK(missed[0].find("mismatch_rate > 1%") != std::string::npos);
  CHECK(missed[0].find("mismatch_rate = 3%") != std::string::npos);
  CHECK(missed[1].find("p95_latency_ratio") != std::string::npos);
}

TEST_CASE("fail_if: conditions are checked when the pipeline is configured") {
  auto& def = testing::linked_plugin("report");
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"fail_if", "mismatch_ratio > 1%"}})),
                       doctest::Contains("unknown metric \"mismatch_ratio\""), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"fail_if", "mismatch_rate 1%"}})),
                       doctest::Contains("needs a comparison"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"fail_if", "total > 1%"}})),
                       doctest::Contains("only rates take a percentage"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"fail_if", "warn_rate > lots"}})),
                       doctest::Contains("is not a number"), ConfigError);
}

TEST_CASE("fail_if: with no verdicts a rate is undefined and does not fire; `total < 1` catches an empty run") {
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"summary", false}, {"fail_if", Value::array({"match_rate < 99%", "total < 1"})}}));
  h.flush();
  h.stop();
  auto missed = h.goals_missed();
  REQUIRE(missed.size() == 1);
  CHECK(missed[0].find("total < 1") != std::string::npos);
}

TEST_CASE("samples per path are capped; memory stays bounded with many distinct paths") {
  auto dir = temp_dir("caps");
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"html", (dir / "r.html").string()}, {"summary", false},
                                        {"samples_per_path", 2}, {"max_paths", 50}}));
  for (int i = 0; i < 2000; ++i)
    h.process(verdict("m" + std::to_string(i), "mismatch", "e",
                      1, 1, {{"json", "fail", "f" + std::to_string(i % 500), "changed", "1", "2"}}, true));
  h.flush();
  std::string html = read(dir / "r.html");
  // 50 paths are tracked (4 hits each, 2 samples each); the other 450 paths x 4 hits are only counted.
  CHECK(html.find("\"untracked_paths\":1800") != std::string::npos);
  CHECK(html.find("\"count\":4,") != std::string::npos);
  CHECK(html.find("\"count\":5,") == std::string::npos);
  h.stop();
  fs::remove_all(dir);
}

TEST_CASE("the console summary lists endpoints, top paths and goals") {
  // render_summary goes to stderr at stop(); check its content through a redirected stderr.
  auto dir = temp_dir("summary");
  auto file = (dir / "stderr.txt").string();
  std::fflush(stderr);
  int saved = ::dup(2);
  FILE* f = std::freopen(file.c_str(), "w", stderr);
  REQUIRE(f);
  {
    testing::StageHarness h(testing::linked_plugin("report"),
                            Value::table({{"title", "robot shadow"}, {"fail_if", "mismatch_rate > 1%"}}));
    feed(h);
    h.stop();
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string out = read(file);
  CHECK(out.find("robot shadow: 100 verdicts") != std::string::npos);
  CHECK(out.find("input_hint") != std::string::npos);
  CHECK(out.find("(all)") != std::string::npos);
  CHECK(out.find("results.hint_list") != std::string::npos);
  CHECK(out.find("fail_if mismatch_rate > 1%: 3%  MISSED") != std::string::npos);
  fs::remove_all(dir);
}

// report_browser.sh runs this case with REPORT_OUT set and opens the file in headless Chromium.
TEST_CASE("a realistic report renders to a self-contained file") {
  auto dir = temp_dir("browser");
  const char* env = std::getenv("REPORT_OUT");
  std::string out = env ? std::string(env) : (dir / "report.html").string();
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"html", out}, {"summary", false}, {"title", "browser test"},
                                        {"fail_if", "mismatch_rate > 1%"}}));
  feed(h);
  h.flush();
  h.stop();
  CHECK(fs::file_size(out) > 5000);
  std::string html = read(out);
  CHECK(html.find("\"title\":\"browser test\"") != std::string::npos);
  CHECK(html.find("\"missed\":true") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("a verdict's lease is held until its JSON line is flushed to the file") {
  auto dir = temp_dir("leases");
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"jsonl", (dir / "v.jsonl").string()}, {"summary", false}}));
  std::atomic<int> released{0};
  auto verdict = [&](const std::string& id) {
    Message m(Kind::verdict, id, 0, R"({"id":")" + id + R"(","verdict":"match","path":"/a","method":"GET","checks":[]})");
    m.lease = std::shared_ptr<const void>(nullptr, [&](const void*) { ++released; });
    return share(std::move(m));
  };
  h.process(verdict("v1"));
  CHECK(released == 0);  // in stdio's buffer only
  CHECK(read(dir / "v.jsonl").empty());
  // The periodic flush (200 ms) writes it out, then lets the source acknowledge.
  CHECK(h.wait_until([&] { return released == 1; }, std::chrono::milliseconds(3000)));
  CHECK(read(dir / "v.jsonl").find("\"v1\"") != std::string::npos);
  h.process(verdict("v2"));
  h.flush();
  CHECK(released == 2);
  h.stop();
  fs::remove_all(dir);
}

TEST_CASE("report files: 0600, an existing jsonl refused unless appended to or overwritten, links never followed") {
  auto dir = temp_dir("files");
  mode_t saved = ::umask(022);
  std::string jsonl = (dir / "v.jsonl").string(), html = (dir / "r.html").string();
  auto report = [&](Value::Table extra) {
    Value::Table options{{"jsonl", jsonl}, {"html", html}, {"summary", false}};
    for (auto& entry : extra) options.push_back(entry);
    return testing::StageHarness(testing::linked_plugin("report"), Value(options));
  };
  auto lines = [&] {
    std::string text = read(jsonl);
    return std::count(text.begin(), text.end(), '\n');
  };
  {
    auto h = report({});
    feed(h);
    h.stop();
  }
  CHECK(lines() == 100);
  CHECK(fs::status(jsonl).permissions() == fs::perms(0600));
  CHECK(fs::status(html).permissions() == fs::perms(0600));
  // A second run: refused when it starts, the first run's verdicts untouched.
  {
    auto h = report({});
    CHECK_THROWS_WITH(h.start(), doctest::Contains("v.jsonl already exists; set append = true"));
  }
  CHECK(lines() == 100);
  {
    auto h = report({{"append", true}});
    feed(h);
    h.stop();
    CHECK(h.counter("jsonl_written").value() == 100);
  }
  CHECK(lines() == 200);
  {
    auto h = report({{"overwrite", true}, {"mode", "0640"}});
    feed(h);
    h.stop();
  }
  CHECK(lines() == 100);
  CHECK(fs::status(jsonl).permissions() == fs::perms(0600));  // an existing file keeps its mode
  CHECK(fs::status(html).permissions() == fs::perms(0640));   // the report is a new file each time

  // Links: refused for the appended jsonl; replaced (never written through) for the html.
  std::ofstream(dir / "victim") << "precious";
  fs::remove(jsonl);
  fs::create_symlink(dir / "victim", jsonl);
  {
    auto h = report({{"overwrite", true}});
    CHECK_THROWS_WITH(h.start(), doctest::Contains("v.jsonl is a symbolic link"));
  }
  CHECK(read(dir / "victim") == "precious");
  fs::remove(jsonl);
  fs::remove(html);
  fs::create_symlink(dir / "victim", html);
  {
    auto h = report({});
    feed(h);
    h.stop();
  }
  CHECK(read(dir / "victim") == "precious");
  CHECK_FALSE(fs::is_symlink(html));
  CHECK(read(html).starts_with("<!DOCTYPE html>"));
  ::umask(saved);
  fs::remove_all(dir);
}

TEST_CASE("disk full: jsonl keeps whole lines, lost lines are dropped as write_failed, writing resumes") {
  auto dir = temp_dir("full");
  std::string jsonl = (dir / "v.jsonl").string();
  testing::StageHarness h(testing::linked_plugin("report"), Value::table({{"jsonl", jsonl}, {"summary", false}}));
  h.start();
  std::uint64_t written = 0;
  {
    testing::FileSizeLimit limit(40 << 10);
    for (int round = 0; round < 30; ++round) feed(h);  // 3000 verdicts, about 300 KiB of lines
    h.flush();
    written = h.counter("jsonl_written").value();
    CHECK(written > 0);
    CHECK(h.dropped("write_failed") > 0);
    CHECK(written + h.dropped("write_failed") == 3000);
    std::string text = read(jsonl);
    CHECK(static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n')) == written);
    CHECK(text.ends_with("}\n"));  // no partial line
    limit.lift();
    feed(h);
    h.stop();
  }
  CHECK(h.counter("jsonl_written").value() == written + 100);
  std::string text = read(jsonl);
  CHECK(static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n')) == written + 100);
  // Every line is one whole verdict.
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    CHECK(line.starts_with("{\"id\":"));
    CHECK(line.ends_with("}"));
  }
  fs::remove_all(dir);
}

TEST_CASE("days-long runs: the jsonl file rotates by size keeping jsonl_keep files, every line whole") {
  auto dir = temp_dir("rotate");
  const auto path = dir / "v.jsonl";
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"jsonl", path.string()}, {"jsonl_max_size", "2KiB"}, {"jsonl_keep", 3},
                                        {"summary", false}}));
  feed(h);
  h.flush();
  h.stop();
  CHECK(h.counter("jsonl_written").value() == 100);
  std::uint64_t rotations = h.counter("jsonl_rotated").value();
  CHECK(rotations > 3);
  // The newest lines are kept, in order, across FILE.3 (oldest) .. FILE; FILE.4 never exists.
  std::vector<std::string> ids;
  for (const auto& name : {path.string() + ".3", path.string() + ".2", path.string() + ".1", path.string()}) {
    REQUIRE(fs::exists(name));
    std::string text = read(name);
    CHECK(!text.empty());
    CHECK(text.back() == '\n');
    CHECK(text.size() <= 2048);
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      REQUIRE(line.starts_with("{\"id\":\""));
      ids.push_back(line.substr(7, line.find('"', 7) - 7));
    }
  }
  CHECK(!fs::exists(path.string() + ".4"));
  REQUIRE(!ids.empty());
  CHECK(ids.back() == "id99");
  for (std::size_t i = 1; i < ids.size(); ++i)
    if (ids[i] != "e" && ids[i - 1] != "e") CHECK(std::stoi(ids[i].substr(2)) == std::stoi(ids[i - 1].substr(2)) + 1);
  fs::remove_all(dir);
}

TEST_CASE("days-long runs: the HTML report is rewritten while verdicts come; goals are judged at the end only") {
  auto dir = temp_dir("html-interval");
  const auto html = dir / "r.html";
  testing::StageHarness h(testing::linked_plugin("report"),
                          Value::table({{"html", html.string()}, {"html_interval", "100ms"},
                                        {"fail_if", Value::array({"mismatch_rate > 1%"})}, {"summary", false}}));
  h.process(verdict("m1", "mismatch", "query", 10, 10));
  // Not flushed, not stopped: a run killed now still leaves its report.
  REQUIRE(h.wait_until([&] { return fs::exists(html); }, std::chrono::seconds(5)));
  CHECK(read(html).find("\"total\":1") != std::string::npos);
  CHECK(h.goals_missed().empty());  // 100% mismatches so far: judged only when the run ends
  feed(h);
  REQUIRE(h.wait_until([&] { return read(html).find("\"total\":101") != std::string::npos; }, std::chrono::seconds(5)));
  h.stop();
  CHECK(h.goals_missed().size() == 1);
  fs::remove_all(dir);
}

TEST_CASE("rotation options need a jsonl file, html_interval is bounded") {
  auto& def = testing::linked_plugin("report");
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"jsonl_max_size", "1MiB"}})),
                       doctest::Contains("set `jsonl`"), ConfigError);
  CHECK_THROWS_WITH_AS(testing::StageHarness(def, Value::table({{"html", "r.html"}, {"html_interval", "10ms"}})),
                       doctest::Contains("at least 100ms"), ConfigError);
}
