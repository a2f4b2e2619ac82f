#pragma once
// Redaction tokens: "REDACTED-" + the first 12 hex digits of HMAC-SHA256(key, value).
// Keyed, so that a token cannot be reversed by hashing guesses without the key (an unkeyed
// hash of a short password is found by brute force in seconds). Equal values under one key
// give equal tokens, so comparisons and joins on redacted data keep working.
#include <string>
#include <string_view>

struct evp_mac_st;
struct evp_mac_ctx_st;

namespace doppel::plugins {

class Pseudonymizer {
 public:
  // 12 hex digits = 48 bits: two different values get the same token with probability
  // 2^-48 — what decides a comparison of an original with its replay. The format is the
  // one earlier versions wrote, so reports and patterns matching REDACTED-<12 hex> still do.
  static constexpr std::size_t kHexDigits = 12;

  // Throws std::runtime_error when OpenSSL cannot set up HMAC-SHA256.
  explicit Pseudonymizer(std::string_view key);
  ~Pseudonymizer();
  Pseudonymizer(const Pseudonymizer&) = delete;
  Pseudonymizer& operator=(const Pseudonymizer&) = delete;

  // Not thread-safe (one MAC context, re-initialised per value): one instance per stage,
  // whose process() runs on one thread at a time.
  std::string token(std::string_view value);

 private:
  evp_mac_st* mac_ = nullptr;
  evp_mac_ctx_st* ctx_ = nullptr;
};

// 32 bytes from OpenSSL's CSPRNG (RAND_bytes); throws std::runtime_error when it fails.
std::string random_key();
// The key of every redact stage without `key` or `key_file` in this process: drawn once, so
// two such stages of one pipeline (say one on the originals, one on the replays) agree.
const std::string& process_random_key();

}  // namespace doppel::plugins
