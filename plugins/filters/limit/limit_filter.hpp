#pragma once
// Rate control for requests: sampling (random, or consistent by the hash of a key taken from
// the request) and a token bucket, in that order. Responses follow their request (requests_only).
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "doppel/json_path.hpp"
#include "doppel/hash.hpp"
#include "doppel/stage.hpp"

namespace doppel::plugins {

// Where the sampling key comes from: `header:X-User`, `param:user`, `json:user.id`.
struct SamplingKey {
  enum class Source { header, param, json } source = Source::header;
  std::string name;                    // header or query parameter name
  std::optional<json::JsonPath> path;  // json
  std::string text;                    // as configured, for messages
};
// Parses "header:NAME" | "param:NAME" | "json:PATH"; nullopt with `error` set otherwise.
std::optional<SamplingKey> parse_sampling_key(std::string_view text, std::string& error);
// The key's value in `request`, nullopt when the request does not carry it.
std::optional<std::string> sampling_key_value(const SamplingKey& key, const Message& request);
// FNV-1a, 32 bits: the hash GoReplay's --http-header-limiter uses, so both keep the same users.
using doppel::fnv1a32;  // GoReplay's limiter hash (doppel/hash.hpp)

struct LimitFilterConfig {
  std::optional<double> per_second;  // token bucket rate; none: no rate limit
  double burst = 1;                  // bucket capacity
  bool wait = false;                 // mode = "wait": hold requests until a token is free
  double percent = 100;              // share kept by sampling
  std::optional<SamplingKey> key;    // consistent sampling by key; none: random
  bool keep_missing_key = true;      // a request without the key passes (GoReplay)
  std::uint64_t seed = 0;            // random sampling seed; 0: from the clock
};

class LimitFilter : public Stage {
 public:
  explicit LimitFilter(LimitFilterConfig config);
  void process(const MessagePtr& message) override;

 private:
  // The drop reason sampling gives `request`, "" when it is kept.
  std::string_view sampling_verdict(const Message& request);
  bool hash_sampled_in(std::string_view value) const;
  bool take_token();

  LimitFilterConfig config_;
  std::mt19937_64 random_;
  std::uniform_real_distribution<double> unit_{0.0, 100.0};
  // Token bucket state; process() runs on one thread at a time.
  double tokens_ = 0;
  std::chrono::steady_clock::time_point refilled_;
};

}  // namespace doppel::plugins
