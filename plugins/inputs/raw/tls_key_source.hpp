#pragma once
// Where a capture finds the secrets to decrypt TLS with: a key log file (`tls_keylog`) followed
// while it grows, and the secrets a pcapng file carries in its Decryption Secrets Blocks (what
// `editcap --inject-secrets tls,keys.log` writes), so one file is enough offline. Shared by the
// sessions of one capture (all its threads).
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "tls_keylog.hpp"

namespace doppel::plugins::raw {

class TlsKeySource {
 public:
  // `keylog_path` empty: only embedded secrets. Throws std::runtime_error when the file cannot
  // be read.
  explicit TlsKeySource(const std::string& keylog_path, TlsKeyLogLimits limits = {});
  TlsKeyLog& keys() { return keys_; }
  const TlsKeyLog& keys() const { return keys_; }
  // Secrets that came with the capture (a pcapng's Decryption Secrets Blocks).
  void add_embedded(std::string_view keylog_text) { keys_.add(keylog_text); }
  bool following() const { return file_ != nullptr; }
  // Reads what was appended to the key log since the last look; at most once a millisecond
  // unless `immediately`, and by one thread at a time (the others go on with what is there).
  void refresh(bool immediately = false);

 private:
  TlsKeyLog keys_;
  std::unique_ptr<TlsKeyLogFile> file_;
  std::mutex poll_mutex_;
  std::atomic<std::int64_t> next_poll_ns_{0};
};

// The TLS key log text of the Decryption Secrets Blocks (type TLS) at the start of a pcapng
// file's first section, before its first packet (where editcap and Wireshark put them); "" for
// a classic pcap, a pipe, or a pcapng without them. Reads only the blocks before the packets.
std::string pcapng_tls_secrets(const std::string& path);

}  // namespace doppel::plugins::raw
