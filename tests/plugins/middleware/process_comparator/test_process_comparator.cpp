// The process comparator with real programs: out-of-order answers, crashes, hangs, garbage,
// large bodies and many judgements in flight. The programs are small Python scripts speaking
// the raw protocol (the helpers have tests of their own).
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "doppel/testing.hpp"

using namespace doppel;
using doppel::testing::ComparatorHarness;
using doppel::testing::make_message;

namespace {

// A script in a directory of its own, removed with it.
struct Script {
  std::filesystem::path dir;
  std::filesystem::path path;
  explicit Script(const std::string& text) {
    static std::atomic<int> n{0};
    dir = std::filesystem::temp_directory_path() /
          ("doppel-process-comparator-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::create_directories(dir);
    path = dir / "check.py";
    std::ofstream(path) << "import json, os, sys, time\n" << text;
  }
  ~Script() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string command() const { return "python3 " + path.string(); }
};

Value options(const Script& s, Value::Table extra = {}) {
  extra.emplace_back("command", Value(s.command()));
  return Value(std::move(extra));
}

MessagePtr response(const std::string& body, Kind kind = Kind::response) {
  return make_message(kind, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}
Exchange exchange(const std::string& original, const std::string& replay) {
  return Exchange(nullptr, response(original), response(replay, Kind::replay), "test");
}

const PluginDefinition& definition() { return testing::linked_plugin("process"); }

// Answers ok when both bodies are equal, else one difference; `line` is the judgement.
const char* kEqualBodies = R"(
for line in sys.stdin:
    j = json.loads(line)
    a, b = j["original"]["body"], j["replay"]["body"]
    answer = {"id": j["id"], "ok": a == b}
    if a != b:
        answer["differences"] = [{"path": "body", "kind": "changed", "original": a, "replay": b, "message": "bodies differ"}]
    print(json.dumps(answer), flush=True)
)";

}  // namespace

TEST_CASE("judgements are answered by the program, with its differences") {
  Script script(kEqualBodies);
  ComparatorHarness h(definition(), options(script));
  auto same = h.judge(exchange("a", "a"));
  CHECK(same.error.empty());
  CHECK(same.differences.empty());
  auto differs = h.judge(exchange("a", "b"));
  REQUIRE(differs.differences.size() == 1);
  CHECK(differs.differences[0].path == "body");
  CHECK(differs.differences[0].original == "a");
  CHECK(differs.differences[0].replay == "b");
  CHECK(differs.differences[0].message == "bodies differ");
  // The synchronous form waits for the answer.
  CHECK(h.comparator().compare(exchange("x", "y")).size() == 1);
  CHECK(h.count("judgements") == 3);
  CHECK(h.count("answers") == 3);
}

TEST_CASE("answers may come in any order: each reaches its own judgement") {
  // Reads three judgements, answers them last first; the answer names the replay body.
  Script script(R"(
pending = []
for line in sys.stdin:
    pending.append(json.loads(line))
    if len(pending) == 3:
        for j in reversed(pending):
            print(json.dumps({"id": j["id"], "ok": False, "differences": [{"path": j["replay"]["body"]}]}), flush=True)
        pending = []
)");
  ComparatorHarness h(definition(), options(script));
  h.start();
  std::mutex mutex;
  std::map<std::string, std::string> answered;  // replay body -> difference path
  std::atomic<int> done{0};
  std::vector<Exchange> exchanges{exchange("o", "r1"), exchange("o", "r2"), exchange("o", "r3")};
  for (const auto& ex : exchanges) {
    std::string body = ex.replay->body().bytes;
    h.comparator().compare_async(ex, [&, body](Judgement j) {
      std::lock_guard lock(mutex);
      answered[body] = j.differences.empty() ? "(none)" : j.differences[0].path;
      ++done;
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (done < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(done == 3);
  CHECK(answered["r1"] == "r1");
  CHECK(answered["r2"] == "r2");
  CHECK(answered["r3"] == "r3");
}

TEST_CASE("a program that crashes: what it owed are errors, and it is started again") {
  // Exits with status 3 on a judgement whose replay body is "crash".
  Script script(R"(
for line in sys.stdin:
    j = json.loads(line)
    if j["replay"]["body"] == "crash":
        sys.exit(3)
    print(json.dumps({"id": j["id"], "ok": True}), flush=True)
)");
  ComparatorHarness h(definition(), options(script, {{"restart_backoff", Value("10ms")}}));
  auto crashed = h.judge(exchange("a", "crash"));
  CHECK(crashed.error.find("exited with status 3 before answering") != std::string::npos);
  CHECK(h.count("owed_on_exit") == 1);
  auto after = h.judge(exchange("a", "a"));
  CHECK(after.error.empty());
  CHECK(h.count("restarts") == 1);
}

TEST_CASE("a program that never answers: the judgement times out and the program is replaced") {
  Script script(R"(
for line in sys.stdin:
    j = json.loads(line)
    if j["replay"]["body"] != "hang":
        print(json.dumps({"id": j["id"], "ok": True}), flush=True)
)");
  ComparatorHarness h(definition(), options(script, {{"timeout", Value("1s")}, {"restart_backoff", Value("10ms")}}));
  auto start = std::chrono::steady_clock::now();
  auto hung = h.judge(exchange("a", "hang"));
  CHECK(hung.error == "no answer within 1s");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(8));
  CHECK(h.count("timeouts") == 1);
  // Silent for the whole timeout: killed and started again; the next judgement is answered.
  auto next = h.judge(exchange("a", "a"));
  CHECK_MESSAGE(next.error.empty(), next.error);
  CHECK(h.count("restarts") == 1);
}

TEST_CASE("garbage, answers for unknown ids and malformed answers are counted; nothing is lost") {
  Script script(R"(
for line in sys.stdin:
    j = json.loads(line)
    print("Traceback? no, just a stray print", flush=True)
    print(json.dumps({"id": 999999, "ok": True}), flush=True)
    if j["replay"]["body"] == "bad":
        print(json.dumps({"id": j["id"], "ok": "maybe"}), flush=True)
    else:
        print(json.dumps({"id": j["id"], "ok": True}), flush=True)
)");
  ComparatorHarness h(definition(), options(script));
  CHECK(h.judge(exchange("a", "a")).error.empty());
  auto bad = h.judge(exchange("a", "bad"));
  CHECK(bad.error.find("ok is not true or false") != std::string::npos);
  CHECK(h.count("garbage_lines") == 2);
  CHECK(h.count("unknown_ids") == 2);
  CHECK(h.count("bad_answers") == 1);
}

TEST_CASE("a check's own error is the judgement's error") {
  Script script(R"(
for line in sys.stdin:
    j = json.loads(line)
    print(json.dumps({"id": j["id"], "error": "KeyError: 'results'"}), flush=True)
)");
  ComparatorHarness h(definition(), options(script));
  CHECK(h.judge(exchange("a", "b")).error == "the check failed: KeyError: 'results'");
}

TEST_CASE("bodies above body_limit go by file, removed once answered") {
  Script script(R"(
for line in sys.stdin:
    j = json.loads(line)
    path = j["original"]["body_file"]
    size = len(open(path, "rb").read())
    print(json.dumps({"id": j["id"], "ok": False, "differences": [{"path": path, "message": str(size)}]}), flush=True)
)");
  ComparatorHarness h(definition(), options(script, {{"body_limit", Value("1KiB")}}));
  auto j = h.judge(exchange(std::string(200000, 'x'), "small"));
  REQUIRE(j.differences.size() == 1);
  CHECK(j.differences[0].message == "200000");
  CHECK(!std::filesystem::exists(j.differences[0].path));
  CHECK(h.count("bodies_spilled") == 1);
}

TEST_CASE("many judgements in flight through several programs, none lost") {
  Script script(kEqualBodies);
  ComparatorHarness h(definition(), options(script, {{"processes", Value(std::int64_t{2})},
                                                      {"concurrency", Value(std::int64_t{8})}}));
  h.start();
  constexpr int kJudgements = 2000;
  std::atomic<int> ok{0}, differ{0}, errors{0};
  for (int i = 0; i < kJudgements; ++i) {
    bool same = i % 3 != 0;
    h.comparator().compare_async(exchange("x", same ? "x" : "y"), [&](Judgement j) {
      if (!j.error.empty()) ++errors;
      else if (j.differences.empty()) ++ok;
      else ++differ;
    });
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (ok + differ + errors < kJudgements && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(errors == 0);
  CHECK(differ == (kJudgements + 2) / 3);
  CHECK(ok + differ == kJudgements);
}

TEST_CASE("stopping answers what is still owed") {
  Script script("time.sleep(60)\n");
  ComparatorHarness h(definition(), options(script));
  h.start();
  std::promise<Judgement> answer;
  h.comparator().compare_async(exchange("a", "b"), [&](Judgement j) { answer.set_value(std::move(j)); });
  auto start = std::chrono::steady_clock::now();
  h.stop();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(8));
  CHECK(answer.get_future().get().error == "doppel stopped before the program answered");
}

TEST_CASE("a program that cannot start is refused when the pipeline is validated") {
  const auto& def = definition();
  auto refused = [&](const std::string& command) {
    try {
      def.create_comparator(testing::validated_options(def, Value::table({{"command", Value(command)}})));
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(refused("/nonexistent/check --flag").find("\"/nonexistent/check\" does not exist") != std::string::npos);
  CHECK(refused("no-such-program-anywhere").find("not found on PATH") != std::string::npos);
  CHECK(refused("python3 /nonexistent/checks.py").find("the script \"/nonexistent/checks.py\" does not exist") !=
        std::string::npos);
}
