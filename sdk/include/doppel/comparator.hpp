#pragma once
// Comparators judge one exchange: the request, what the old service answered (original)
// and what the new one answered (replay). A `compare` stage applies them per endpoint rule.
#include <string>
#include <vector>

#include "doppel/message.hpp"

namespace doppel {

struct Exchange {
  MessagePtr request;   // may be null when the request was never seen
  MessagePtr original;  // kind response; null when missing
  MessagePtr replay;    // kind replay; null when missing
};

struct Difference {
  std::string path;      // field path or aspect: "status", "results.hint_list", "header:Content-Type"
  std::string kind;      // "changed", "missing", "extra", "type", "length", "order", "empty", ...
  std::string original;  // the original side, truncated for display
  std::string replay;    // the replay side, truncated for display
};

class Comparator {
 public:
  virtual ~Comparator() = default;
  // Returns every difference; an empty vector means the exchange passes this check.
  // Called concurrently from several threads: keep it free of mutable state.
  virtual std::vector<Difference> compare(const Exchange& exchange) const = 0;
};

}  // namespace doppel
