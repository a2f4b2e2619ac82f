#pragma once
// Comparators judge one exchange: the request, what the old service answered (original)
// and what the new one answered (replay). A `compare` stage applies them per endpoint rule.
//
// Most comparators are pure functions of the exchange: they implement compare() and nothing
// else. One that waits on something outside doppel (a program it runs, a service it asks)
// overrides compare_async() as well, so that many judgements can be in flight at once, and
// start()/stop() to own what it runs for the length of a run.
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "doppel/message.hpp"

namespace spdlog {
class logger;
}

namespace doppel {

class Counter;

struct Exchange {
  Exchange() = default;
  Exchange(MessagePtr request_, MessagePtr original_, MessagePtr replay_, std::string endpoint_ = {},
           bool against_baseline_ = false)
      : request(std::move(request_)),
        original(std::move(original_)),
        replay(std::move(replay_)),
        endpoint(std::move(endpoint_)),
        against_baseline(against_baseline_) {}

  MessagePtr request;   // may be null when the request was never seen
  MessagePtr original;  // kind response; null when missing
  MessagePtr replay;    // kind replay; null when missing
  std::string endpoint;  // the compare rule's name for it ("input_hint", "GET /v1/x"); may be empty
  // `replay` is the baseline (a second copy of the old service), judged to learn what is noise.
  bool against_baseline = false;
};

struct Difference {
  Difference() = default;
  Difference(std::string path_, std::string kind_, std::string original_ = {}, std::string replay_ = {},
             std::string message_ = {})
      : path(std::move(path_)),
        kind(std::move(kind_)),
        original(std::move(original_)),
        replay(std::move(replay_)),
        message(std::move(message_)) {}

  std::string path;      // field path or aspect: "status", "results.hint_list", "header:Content-Type"
  std::string kind;      // "changed", "missing", "extra", "type", "length", "order", "empty", ...
  std::string original;  // the original side, truncated for display
  std::string replay;    // the replay side, truncated for display
  std::string message;   // a sentence for people, when path and kind do not say it all (may be empty)
};

// What one judgement came to: its differences, or why there is no judgement (`error` set: the
// comparator could not decide, which a compare stage counts and reports, never as a pass).
struct Judgement {
  std::vector<Difference> differences;
  std::string error;
};

// What the runtime offers a comparator while a run goes on.
class ComparatorContext {
 public:
  virtual ~ComparatorContext() = default;
  // The name rules use for it: the NAME of `[comparators.NAME]`, or the stock plugin's name.
  virtual const std::string& comparator_name() const = 0;
  virtual spdlog::logger& log() = 0;
  // A named counter, shown under the comparator in the summary and /metrics; declare its name
  // in the plugin's metrics list. Thread-safe; keep the reference (it lives as long as the run).
  virtual Counter& counter(std::string_view name) = 0;
};

class Comparator {
 public:
  virtual ~Comparator() = default;
  // Returns every difference; an empty vector means the exchange passes this check.
  // Called concurrently from several threads: keep it free of mutable state.
  virtual std::vector<Difference> compare(const Exchange& exchange) const = 0;

  // Judges `exchange` and calls `done` exactly once with the outcome: before returning (the
  // default, which runs compare() and turns an exception into Judgement::error) or later, from
  // a thread of the comparator's own. May block while too many judgements are in flight; that
  // is the compare stage's back-pressure. The exchange's messages stay alive until `done`.
  virtual void compare_async(const Exchange& exchange, std::function<void(Judgement)> done) const {
    Judgement judgement;
    try {
      judgement.differences = compare(exchange);
    } catch (const std::exception& e) {
      judgement.error = e.what();
    }
    done(std::move(judgement));
  }

  // Called once before the first judgement of a run and once after the last (every `done`
  // called). A comparator that runs something of its own starts and stops it here; start()
  // throws when that cannot be done, and the run does not start.
  virtual void start(ComparatorContext& /*context*/) {}
  virtual void stop() {}
};

}  // namespace doppel
