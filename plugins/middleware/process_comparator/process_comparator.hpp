#pragma once
// The `process` comparator: judges exchanges with a program the user wrote in any language,
// over the JSON-lines protocol of protocol.hpp. Each of `processes` copies of the program has
// up to `concurrency` judgements in flight; answers come back in any order, matched by id.
// A program that exits or hangs is restarted with back-off, and what it owed is answered
// as errors; a judgement is never left unanswered past `timeout`.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "doppel/child_process.hpp"
#include "doppel/comparator.hpp"
#include "doppel/stage.hpp"
#include "protocol.hpp"

namespace doppel::plugins {

struct ProcessComparatorConfig {
  std::vector<std::string> argv;
  std::size_t processes = 1;
  std::size_t concurrency = 256;  // judgements in flight per process
  std::chrono::nanoseconds timeout = std::chrono::seconds(10);
  std::size_t body_limit = std::size_t{8} << 20;
  std::size_t max_line = std::size_t{64} << 20;  // longest answer line read
  std::chrono::nanoseconds backoff = std::chrono::milliseconds(100);
  std::chrono::nanoseconds backoff_max = std::chrono::seconds(10);
};

class ProcessComparator : public Comparator {
 public:
  explicit ProcessComparator(ProcessComparatorConfig config);
  ~ProcessComparator() override;

  // Only asynchronous judgements make sense for a program; the synchronous form waits for one.
  std::vector<Difference> compare(const Exchange& exchange) const override;
  void compare_async(const Exchange& exchange, std::function<void(Judgement)> done) const override;
  void start(ComparatorContext& context) override;
  void stop() override;

 private:
  struct Pending {
    std::function<void(Judgement)> done;
    std::chrono::steady_clock::time_point deadline;
    std::vector<std::string> spilled;  // body files, removed when the judgement is over
    bool sent = false;  // written to the program (else still in its outbox)
  };
  // One copy of the program and what it owes.
  struct Program {
    std::size_t index = 0;
    std::mutex mutex;
    std::condition_variable changed;
    ChildProcess child;
    bool alive = false;
    std::string down;  // why the last start failed: judgements fail at once until one succeeds
    bool supervisor_done = false;
    std::atomic<bool> base64{false}, json{true};  // from its hello
    std::unordered_map<std::uint64_t, Pending> in_flight;
    std::string outbox;  // judgement lines not written yet
    std::vector<std::uint64_t> outbox_ids;
    std::chrono::steady_clock::time_point last_answer;
    std::thread supervisor, writer;
    std::mutex write_mutex;  // held while writing to child.stdin_fd; closing it takes it too
  };

  void supervise(Program& program);
  void write_lines(Program& program);
  // After an exit: waits `backoff` (doubling it) and starts the program again, until that
  // works (true) or doppel stops (false).
  bool restart(Program& program, std::chrono::nanoseconds& backoff);
  void read_answers(Program& program, int fd);
  void handle_line(Program& program, std::string_view line);
  // Answers with `why` every judgement `program` owes (doppel stops, it cannot be started), or
  // only those written to it (it exited: the others go to the next one).
  void fail_all(Program& program, const std::string& why, bool only_sent = false);
  void reap_timeouts();
  void finish(Pending& pending, Judgement judgement) const;
  ChildProcess spawn() const;
  std::vector<std::pair<std::string, std::string>> environment() const;

  ProcessComparatorConfig config_;
  std::string command_text_;
  ComparatorContext* context_ = nullptr;
  std::string spill_dir_;
  std::vector<std::unique_ptr<Program>> programs_;
  mutable std::atomic<std::uint64_t> next_id_{1};
  mutable std::atomic<std::size_t> next_program_{0};
  std::atomic<bool> stopping_{false};
  std::mutex reaper_mutex_;
  std::condition_variable reaper_wake_;
  std::thread reaper_;
  Counter* judgements_ = nullptr;
  Counter* answers_ = nullptr;
  Counter* timeouts_ = nullptr;
  Counter* restarts_ = nullptr;
  Counter* owed_on_exit_ = nullptr;
  Counter* garbage_lines_ = nullptr;
  Counter* bad_answers_ = nullptr;
  Counter* unknown_ids_ = nullptr;
  Counter* bodies_spilled_ = nullptr;
  Counter* encode_errors_ = nullptr;
  mutable std::atomic<std::uint64_t> garbage_logged_{0};
};

}  // namespace doppel::plugins
