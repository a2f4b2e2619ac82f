#pragma once
// TLS session secrets in the NSS key log format (what SSLKEYLOGFILE makes OpenSSL, BoringSSL,
// NSS, Go, Java agents, curl and browsers write; what Wireshark reads): one line per secret,
// `LABEL <client random, 64 hex> <secret, hex>`, keyed by the ClientHello's random. Kept in
// memory only: doppel never writes a secret anywhere (docs/guide/tls.md).
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace doppel::plugins::raw {

// The secrets of one connection, raw bytes (not hex). Empty when the log has no such line.
struct TlsSecrets {
  std::string master_secret;                // TLS 1.2: CLIENT_RANDOM (48 bytes)
  std::string client_early_traffic;         // TLS 1.3: CLIENT_EARLY_TRAFFIC_SECRET
  std::string client_handshake_traffic;     // CLIENT_HANDSHAKE_TRAFFIC_SECRET
  std::string server_handshake_traffic;     // SERVER_HANDSHAKE_TRAFFIC_SECRET
  std::string client_application_traffic;   // CLIENT_TRAFFIC_SECRET_0
  std::string server_application_traffic;   // SERVER_TRAFFIC_SECRET_0
};

struct TlsKeyLogStats {
  std::uint64_t lines = 0;          // secrets taken
  std::uint64_t bad_lines = 0;      // a known label with bad hex or a wrong length: skipped
  std::uint64_t ignored_lines = 0;  // comments, blank lines, labels doppel has no use for
  std::uint64_t evicted = 0;        // connections' secrets forgotten to stay within max_keys
  std::uint64_t evicted_unused = 0;  // part of evicted: never looked up (a capture may still need them)
  std::uint64_t sessions_evicted = 0;  // sessions forgotten to stay within max_sessions
};

// How much a key log keeps. A days-long capture of a busy HTTPS server logs millions of lines,
// and a key log line carries no time: the oldest entries go first at the bound, which is also
// how they expire (a live capture needs a connection's secrets within tls_key_wait of its
// handshake; a capture file's key log larger than the bound needs a larger bound).
struct TlsKeyLogLimits {
  std::size_t max_keys = 100000;      // connections (client randoms) whose secrets are kept
  std::size_t max_sessions = 100000;  // TLS 1.2 sessions (ids, tickets) remembered for resumption
};

// Thread-safe: capture threads look secrets up while a follower (TlsKeyLogFile) adds lines.
class TlsKeyLog {
 public:
  explicit TlsKeyLog(TlsKeyLogLimits limits = {}) : limits_(limits) {}
  // Adds the lines of `text`; a last line without its newline is taken as whole (a caller
  // following a file keeps a partial line back itself).
  void add(std::string_view text);
  // Secrets of the connection whose ClientHello.random is `client_random` (32 raw bytes).
  std::optional<TlsSecrets> find(std::string_view client_random) const;
  // TLS 1.2 resumption when a log holds no line for a resumed connection's random (Wireshark
  // does the same): a full handshake's master secret is remembered under its session id and
  // under the session ticket the server issued, and found again by either.
  void remember_session(std::string_view session_key, std::string_view master_secret);
  std::optional<std::string> find_session(std::string_view session_key) const;
  // Bumped by every add() that took a secret: a decoder waiting for a key looks again only
  // when it moved.
  std::uint64_t generation() const;
  TlsKeyLogStats stats() const;
  std::size_t size() const;           // connections whose secrets are kept
  std::size_t sessions() const;       // sessions remembered
  const TlsKeyLogLimits& limits() const { return limits_; }

 private:
  // One connection's secrets in place (each at most 48 bytes): no allocation per secret, about
  // 375 bytes a connection with its map node and the order entry.
  static constexpr std::size_t kSecretFields = 6;
  struct StoredSecrets {
    std::array<std::array<char, 48>, kSecretFields> value;
    std::array<std::uint8_t, kSecretFields> length{};
    mutable std::atomic<bool> used{false};  // looked up at least once (find() holds a shared lock)
  };
  using ClientRandom = std::array<char, 32>;
  struct ClientRandomHash {
    std::size_t operator()(const ClientRandom& random) const;  // the random's own bytes: already random
  };

  TlsKeyLogLimits limits_;
  mutable std::shared_mutex mutex_;
  // The maps' own keys in the order they were first added (nodes do not move): the oldest is
  // forgotten first at the bound.
  std::unordered_map<ClientRandom, StoredSecrets, ClientRandomHash> secrets_;
  std::deque<const ClientRandom*> secrets_order_;
  std::unordered_map<std::string, std::string> sessions_;
  std::deque<const std::string*> sessions_order_;
  TlsKeyLogStats stats_;
  std::uint64_t generation_ = 0;
};

// Follows a key log file that may still be written: each poll() adds the lines appended since
// the last one (a partial last line waits for its newline); a file that shrank or was replaced
// (another inode at the path) is read again from its start.
class TlsKeyLogFile {
 public:
  // Throws std::runtime_error naming the path and the system's reason when it cannot be read.
  TlsKeyLogFile(std::string path, TlsKeyLog& log);
  ~TlsKeyLogFile();
  TlsKeyLogFile(const TlsKeyLogFile&) = delete;
  TlsKeyLogFile& operator=(const TlsKeyLogFile&) = delete;
  void poll();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  TlsKeyLog& log_;
  int fd_ = -1;
  std::uint64_t inode_ = 0;
  std::uint64_t offset_ = 0;
  std::string partial_;
};

// Why `text` is not a key log (a pcapng Decryption Secrets Block's, or a file's first bytes):
// nullopt when it is one.
std::optional<std::string> keylog_problem(std::string_view text);

}  // namespace doppel::plugins::raw
