#pragma once
// TLS session secrets in the NSS key log format (what SSLKEYLOGFILE makes OpenSSL, BoringSSL,
// NSS, Go, Java agents, curl and browsers write; what Wireshark reads): one line per secret,
// `LABEL <client random, 64 hex> <secret, hex>`, keyed by the ClientHello's random. Kept in
// memory only: doppel never writes a secret anywhere (docs/guide/tls.md).
#include <cstdint>
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
};

// Thread-safe: capture threads look secrets up while a follower (TlsKeyLogFile) adds lines.
class TlsKeyLog {
 public:
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
  std::size_t size() const;

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, TlsSecrets> secrets_;
  std::unordered_map<std::string, std::string> sessions_;
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
