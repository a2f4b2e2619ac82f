#include "limit_filter.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

#include "doppel/json_text.hpp"

namespace doppel::plugins {


std::optional<SamplingKey> parse_sampling_key(std::string_view text, std::string& error) {
  SamplingKey key;
  key.text = std::string(text);
  auto colon = text.find(':');
  std::string_view kind = text.substr(0, colon);
  std::string_view name = colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  if (name.empty() || (kind != "header" && kind != "param" && kind != "json")) {
    error = "expected \"header:NAME\", \"param:NAME\" or \"json:PATH\", got \"" + std::string(text) + "\"";
    return std::nullopt;
  }
  key.name = std::string(name);
  if (kind == "header") {
    key.source = SamplingKey::Source::header;
  } else if (kind == "param") {
    key.source = SamplingKey::Source::param;
  } else {
    key.source = SamplingKey::Source::json;
    std::string path_error;
    key.path = json::JsonPath::try_parse(name, &path_error);
    if (!key.path) {
      error = "invalid JSON path \"" + std::string(name) + "\": " + path_error;
      return std::nullopt;
    }
    if (key.path->has_wildcard()) {
      error = "the JSON path of a sampling key must name one field, without wildcards: \"" + std::string(name) + "\"";
      return std::nullopt;
    }
  }
  return key;
}

std::optional<std::string> sampling_key_value(const SamplingKey& key, const Message& request) {
  const HttpView& http = request.http();
  switch (key.source) {
    case SamplingKey::Source::header: {
      auto v = http.header(key.name);
      if (!v || v->empty()) return std::nullopt;
      return std::string(*v);
    }
    case SamplingKey::Source::param: {
      // The raw value as written in the query (not percent-decoded), as GoReplay hashes it.
      std::string_view query = http.query();
      while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        auto eq = pair.find('=');
        if (pair.substr(0, eq) == key.name) {
          if (eq == std::string_view::npos || eq + 1 == pair.size()) return std::nullopt;
          return std::string(pair.substr(eq + 1));
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
      }
      return std::nullopt;
    }
    case SamplingKey::Source::json: {
      const DecodedBody& body = request.body();
      if (!json::looks_like_json(body.bytes)) return std::nullopt;
      auto doc = json::JsonDocument::parse(body.bytes);
      if (!doc.ok()) return std::nullopt;
      auto value = key.path->find_first(doc.root());
      if (!value) return std::nullopt;
      return json::scalar_text(*value);
    }
  }
  return std::nullopt;
}

LimitFilter::LimitFilter(LimitFilterConfig config)
    : config_(std::move(config)),
      random_(config_.seed != 0 ? config_.seed
                                : static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())),
      tokens_(config_.burst),
      refilled_(std::chrono::steady_clock::now()) {}

std::string_view LimitFilter::sampling_verdict(const Message& request) {
  if (config_.percent >= 100 && !config_.key) return {};
  if (!config_.key) return unit_(random_) < config_.percent ? std::string_view{} : "sampled_out";
  auto value = sampling_key_value(*config_.key, request);
  if (!value) return config_.keep_missing_key ? std::string_view{} : "missing_key";
  return hash_sampled_in(*value) ? std::string_view{} : "sampled_out_by_key";
}

bool LimitFilter::hash_sampled_in(std::string_view value) const {
  if (config_.percent >= 100) return true;
  std::uint32_t h = fnv1a32(value);
  // Whole percents use GoReplay's rule (hash % 100 < percent), so both keep the same users;
  // fractions need finer buckets.
  double whole = 0;
  if (std::modf(config_.percent, &whole) == 0.0) return h % 100 < static_cast<std::uint32_t>(whole);
  return static_cast<double>(h % 10000) < config_.percent * 100;
}

bool LimitFilter::take_token() {
  if (!config_.per_second) return true;
  const double rate = *config_.per_second;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    double elapsed = std::chrono::duration<double>(now - refilled_).count();
    tokens_ = std::min(config_.burst, tokens_ + elapsed * rate);
    refilled_ = now;
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return true;
    }
    if (!config_.wait || context().stopping()) return false;
    // mode = "wait": sleep until the next token, then take it (back-pressure upstream).
    auto need = std::chrono::duration<double>((1.0 - tokens_) / rate);
    std::this_thread::sleep_for(std::min<std::chrono::duration<double>>(need, std::chrono::milliseconds(100)));
  }
}

void LimitFilter::process(const MessagePtr& message) {
  const HttpView& http = message->http();
  if (!http.is_request()) {
    context().drop("unparseable_request");
    return;
  }
  if (auto reason = sampling_verdict(*message); !reason.empty()) {
    context().drop(reason);
    return;
  }
  if (!take_token()) {
    context().drop("rate_limited");
    return;
  }
  context().emit(message);
}

}  // namespace doppel::plugins
