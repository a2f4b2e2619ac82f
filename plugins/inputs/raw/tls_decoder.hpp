#pragma once
// TLS in one TCP connection, decrypted with the secrets of a key log (TlsKeyLog): the record
// layer of both directions, the handshake messages that say which version, cipher, server name
// and protocol were chosen, the keys derived with OpenSSL's KDFs (TLS 1.2 PRF, TLS 1.3
// HKDF-Expand-Label) and the records opened with OpenSSL's EVP ciphers (never by hand). What
// comes out is the application data, per direction and in order, for the HTTP parsers.
// Anything that cannot be decrypted with certainty (no key, wrong key, lost bytes, an
// unsupported cipher, a renegotiation) ends the decoding with a reason: never a guessed byte.
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "tls_keylog.hpp"

namespace doppel::plugins::raw {

class MemoryAccount;

// Why a connection's TLS could not be (or stopped being) decrypted: each a `tls.<name>` metric.
enum class TlsFailure {
  none,
  no_key,               // the key log never had this connection's secrets (waited key_wait)
  bad_key,              // a record did not authenticate with the logged secret (wrong key)
  gap,                  // bytes of the connection were never captured
  malformed,            // not a valid TLS record or handshake message
  unsupported_version,  // SSL 3.0, TLS 1.0/1.1, or a version not known
  unsupported_cipher,   // a cipher suite doppel does not decrypt (its name: TlsInfo::cipher)
  renegotiation,        // TLS 1.2 renegotiation: a second handshake inside the first
  early_data,           // TLS 1.3 0-RTT data, which doppel does not decrypt
  too_large,            // records held waiting for a key exceeded max_held_bytes
};
inline constexpr std::size_t kTlsFailureCount = 10;
std::string_view tls_failure_name(TlsFailure failure);

// What the handshake chose; filled as it is seen.
struct TlsInfo {
  std::string version;  // "TLSv1.2", "TLSv1.3"
  std::string cipher;   // IANA name, e.g. "TLS_AES_128_GCM_SHA256"; "0x1234" when unknown
  std::string sni;      // the ClientHello's server_name, "" when none
  std::string alpn;     // the protocol the server selected ("h2", "http/1.1"), "" when none
  bool resumed = false;
};

struct TlsLimits {
  std::size_t max_held_bytes = std::size_t{1} << 20;  // records held while the key is awaited
  std::int64_t key_wait_ns = 10'000'000'000;          // how long a key is awaited
};

class TlsDecoderListener {
 public:
  virtual ~TlsDecoderListener() = default;
  // Application data of direction `direction` (0: client to server), in order. `ts`: when the
  // record's last byte was captured.
  virtual void on_plaintext(int direction, std::string_view bytes, std::int64_t ts) = 0;
  // The handshake's keys are proven (both Finished messages of TLS 1.3, either of TLS 1.2 read);
  // info() is complete. Called once, before the first plaintext.
  virtual void on_keyed() = 0;
  // Decoding ended: nothing more comes from this connection. Called at most once.
  virtual void on_failure(TlsFailure failure) = 0;
};

class TlsDecoder {
 public:
  // `memory`: where held records and partial records are charged; null: not accounted.
  TlsDecoder(TlsKeyLog& keys, TlsDecoderListener& listener, MemoryAccount* memory, TlsLimits limits);
  ~TlsDecoder();
  TlsDecoder(const TlsDecoder&) = delete;
  TlsDecoder& operator=(const TlsDecoder&) = delete;

  enum class Detection { no, maybe, yes };
  // Whether the first bytes of a client's stream begin a TLS handshake record holding a
  // ClientHello (type 22, version 3.x, handshake type 1, plausible lengths). `maybe`: too few
  // bytes to tell yet.
  static Detection detect_client_hello(std::string_view first_bytes);
  // Whether `bytes` begin with a TLS record header this decoder would take (a known content
  // type, version 3.x, a length a record can have) holding at least one byte. No HTTP message
  // starts like that: records without their ClientHello mean TLS captured from its middle.
  static bool looks_like_record(std::string_view bytes);

  // The bytes of direction `direction` (0: client), in order, from the connection's start.
  // Both directions' calls come in capture order: plaintext is produced in that order too,
  // also for records held while a key was awaited.
  void data(int direction, std::string_view bytes, std::int64_t ts);
  // Bytes of `direction` will never be seen: the decoding ends (gap).
  void hole(int direction);
  // Time passed with no data: a key awaited longer than key_wait ends the decoding (no_key).
  void advance(std::int64_t now_ns);
  // The connection ended: a key still awaited is looked up a last time, else no_key.
  void close();
  // Evicted by the memory budget: held bytes are released and the decoding ends (too_large).
  void shed();

  const TlsInfo& info() const;
  bool failed() const;
  bool keyed() const;
  // Records are held until the key log has the secrets they need: before the handshake's, and
  // also once keyed (TLS 1.3's application secrets are logged after the handshake's).
  bool waiting() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace doppel::plugins::raw
