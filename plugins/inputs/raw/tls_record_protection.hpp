#pragma once
// The protection of TLS records in one direction, for TlsDecoder: the cipher suites doppel
// decrypts, the traffic keys derived from logged secrets with OpenSSL's KDFs (TLS 1.2 PRF, TLS 1.3
// HKDF-Expand-Label) and records opened, authentication checked, with OpenSSL's EVP ciphers.
#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace doppel::plugins::raw::tls {

enum class RecordCipher : std::uint8_t { unsupported, aes_gcm, chacha20_poly1305, aes_cbc };

struct CipherSuite {
  std::uint16_t id;
  const char* name;  // IANA
  bool tls13;
  RecordCipher cipher;
  std::uint8_t key_length;
  const char* mac_digest;  // CBC suites: the HMAC's digest; null for AEADs
  std::uint8_t mac_length;
  const char* hash;  // the PRF's (TLS 1.2) or HKDF's (TLS 1.3) digest
};

// The suite with IANA id `id`, supported or only named; null when doppel does not know it.
const CipherSuite* find_cipher_suite(std::uint16_t id);
// IANA name, "0xC0FF" when unknown.
std::string cipher_suite_name(std::uint16_t id);

struct TrafficKeys {
  std::string key;
  std::string iv;       // TLS 1.2 GCM: the 4-byte salt; ChaCha20 and TLS 1.3: 12 bytes; CBC: empty
  std::string mac_key;  // CBC only
};

// TLS 1.2: the key block of RFC 5246 6.3 cut into both directions' keys.
bool derive_tls12_keys(const CipherSuite& suite, std::string_view master_secret, std::string_view client_random,
                       std::string_view server_random, TrafficKeys& client, TrafficKeys& server);
// TLS 1.3: a traffic secret's key and iv (RFC 8446 7.3).
bool derive_tls13_keys(const CipherSuite& suite, std::string_view traffic_secret, TrafficKeys& keys);
// TLS 1.3 KeyUpdate: application_traffic_secret_N+1 in place of N.
bool next_tls13_traffic_secret(const CipherSuite& suite, std::string& traffic_secret);

enum class OpenStatus : std::uint8_t { ok, bad_key, malformed };

// One direction's read state: the cipher context is keyed once and reused for every record.
class RecordOpener {
 public:
  RecordOpener();
  ~RecordOpener();
  RecordOpener(const RecordOpener&) = delete;
  RecordOpener& operator=(const RecordOpener&) = delete;

  // Starts a new key with sequence number 0.
  bool install(const CipherSuite& suite, const TrafficKeys& keys, bool tls13, bool encrypt_then_mac);
  bool installed() const { return installed_; }
  // Opens the record `header` (5 bytes) + `fragment`. On ok, `plaintext` views this opener's
  // buffer (valid until the next open) and `content_type` is the record's (TLS 1.3: the inner
  // one); the sequence number advances. On failure nothing changes.
  OpenStatus open(std::string_view header, std::string_view fragment, std::string_view& plaintext,
                  std::uint8_t& content_type);

 private:
  OpenStatus open_aead(std::string_view header, std::string_view fragment, std::string_view& plaintext,
                       std::uint8_t& content_type);
  OpenStatus open_cbc(std::string_view header, std::string_view fragment, std::string_view& plaintext);
  bool record_mac(std::uint8_t type, std::string_view version, std::string_view covered, unsigned char* mac);

  EVP_CIPHER_CTX* cipher_ctx_ = nullptr;
  EVP_MAC_CTX* mac_ctx_ = nullptr;
  RecordCipher cipher_ = RecordCipher::unsupported;
  bool tls13_ = false;
  bool encrypt_then_mac_ = false;
  bool installed_ = false;
  std::size_t mac_length_ = 0;
  unsigned char iv_[12] = {};
  std::size_t iv_length_ = 0;
  std::uint64_t sequence_ = 0;
  std::unique_ptr<unsigned char[]> buffer_;  // the largest record's plaintext, allocated once
};

}  // namespace doppel::plugins::raw::tls
