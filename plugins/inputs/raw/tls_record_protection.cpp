#include "tls_record_protection.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <cstdio>

namespace doppel::plugins::raw::tls {

namespace {

constexpr std::size_t kMaxFragment = (std::size_t{1} << 14) + 2048;
constexpr std::size_t kAeadTag = 16;
constexpr std::size_t kAesBlock = 16;
constexpr std::size_t kTls12GcmExplicitNonce = 8;

using enum RecordCipher;

// Supported suites decrypt; the others are named so that an unsupported_cipher says which.
constexpr CipherSuite kSuites[] = {
    {0x1301, "TLS_AES_128_GCM_SHA256", true, aes_gcm, 16, nullptr, 0, "SHA256"},
    {0x1302, "TLS_AES_256_GCM_SHA384", true, aes_gcm, 32, nullptr, 0, "SHA384"},
    {0x1303, "TLS_CHACHA20_POLY1305_SHA256", true, chacha20_poly1305, 32, nullptr, 0, "SHA256"},
    {0x1304, "TLS_AES_128_CCM_SHA256", true, unsupported, 0, nullptr, 0, nullptr},
    {0x1305, "TLS_AES_128_CCM_8_SHA256", true, unsupported, 0, nullptr, 0, nullptr},
    {0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", false, aes_gcm, 16, nullptr, 0, "SHA256"},
    {0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", false, aes_gcm, 32, nullptr, 0, "SHA384"},
    {0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", false, aes_gcm, 16, nullptr, 0, "SHA256"},
    {0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", false, aes_gcm, 32, nullptr, 0, "SHA384"},
    {0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", false, aes_gcm, 16, nullptr, 0, "SHA256"},
    {0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", false, aes_gcm, 32, nullptr, 0, "SHA384"},
    {0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", false, aes_gcm, 16, nullptr, 0, "SHA256"},
    {0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false, aes_gcm, 32, nullptr, 0, "SHA384"},
    {0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, chacha20_poly1305, 32, nullptr, 0, "SHA256"},
    {0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", false, chacha20_poly1305, 32, nullptr, 0, "SHA256"},
    {0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, chacha20_poly1305, 32, nullptr, 0, "SHA256"},
    {0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", false, aes_cbc, 16, "SHA1", 20, "SHA256"},
    {0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", false, aes_cbc, 32, "SHA1", 20, "SHA256"},
    {0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", false, aes_cbc, 16, "SHA256", 32, "SHA256"},
    {0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", false, aes_cbc, 32, "SHA256", 32, "SHA256"},
    {0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", false, aes_cbc, 16, "SHA1", 20, "SHA256"},
    {0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", false, aes_cbc, 32, "SHA1", 20, "SHA256"},
    {0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", false, aes_cbc, 16, "SHA256", 32, "SHA256"},
    {0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", false, aes_cbc, 32, "SHA256", 32, "SHA256"},
    {0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", false, aes_cbc, 16, "SHA1", 20, "SHA256"},
    {0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", false, aes_cbc, 32, "SHA1", 20, "SHA256"},
    {0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", false, aes_cbc, 16, "SHA1", 20, "SHA256"},
    {0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", false, aes_cbc, 32, "SHA1", 20, "SHA256"},
    {0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", false, aes_cbc, 16, "SHA256", 32, "SHA256"},
    {0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", false, aes_cbc, 32, "SHA384", 48, "SHA384"},
    {0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", false, aes_cbc, 16, "SHA256", 32, "SHA256"},
    {0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", false, aes_cbc, 32, "SHA384", 48, "SHA384"},
    // Named only.
    {0x0004, "TLS_RSA_WITH_RC4_128_MD5", false, unsupported, 0, nullptr, 0, nullptr},
    {0x0005, "TLS_RSA_WITH_RC4_128_SHA", false, unsupported, 0, nullptr, 0, nullptr},
    {0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", false, unsupported, 0, nullptr, 0, nullptr},
    {0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA", false, unsupported, 0, nullptr, 0, nullptr},
    {0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC09C, "TLS_RSA_WITH_AES_128_CCM", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC09D, "TLS_RSA_WITH_AES_256_CCM", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC0AF, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC050, "TLS_RSA_WITH_ARIA_128_GCM_SHA256", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC051, "TLS_RSA_WITH_ARIA_256_GCM_SHA384", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC060, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC05C, "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256", false, unsupported, 0, nullptr, 0, nullptr},
    {0xC05D, "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384", false, unsupported, 0, nullptr, 0, nullptr},
};

// Fetched once per process: fetching per connection costs a provider lookup and a lock.
const EVP_CIPHER* fetched_cipher(RecordCipher cipher, std::size_t key_length) {
  static EVP_CIPHER* const aes128_gcm = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  static EVP_CIPHER* const aes256_gcm = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* const chacha20 = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  static EVP_CIPHER* const aes128_cbc = EVP_CIPHER_fetch(nullptr, "AES-128-CBC", nullptr);
  static EVP_CIPHER* const aes256_cbc = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  switch (cipher) {
    case RecordCipher::aes_gcm:
      return key_length == 16 ? aes128_gcm : aes256_gcm;
    case RecordCipher::chacha20_poly1305:
      return chacha20;
    case RecordCipher::aes_cbc:
      return key_length == 16 ? aes128_cbc : aes256_cbc;
    case RecordCipher::unsupported:
      break;
  }
  return nullptr;
}

EVP_MAC* fetched_hmac() {
  static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return hmac;
}

bool tls1_prf(const char* digest, std::string_view secret, std::string_view seed, unsigned char* out,
              std::size_t length) {
  static EVP_KDF* const prf = EVP_KDF_fetch(nullptr, "TLS1-PRF", nullptr);
  if (!prf) return false;
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(prf);
  if (!ctx) return false;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, const_cast<char*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, const_cast<char*>(seed.data()), seed.size()),
      OSSL_PARAM_construct_end()};
  bool ok = EVP_KDF_derive(ctx, out, length, params) > 0;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

// RFC 8446 7.1 HKDF-Expand-Label with an empty context; the HkdfLabel is built here and
// expanded by OpenSSL's HKDF in expand-only mode.
bool hkdf_expand_label(const char* digest, std::string_view secret, std::string_view label, unsigned char* out,
                       std::size_t length) {
  static EVP_KDF* const hkdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (!hkdf || length > 255 || label.size() > 240) return false;
  std::array<unsigned char, 2 + 1 + 6 + 240 + 1> info{};
  std::size_t n = 0;
  info[n++] = 0;
  info[n++] = static_cast<unsigned char>(length);
  info[n++] = static_cast<unsigned char>(6 + label.size());
  for (char c : std::string_view("tls13 ")) info[n++] = static_cast<unsigned char>(c);
  for (char c : label) info[n++] = static_cast<unsigned char>(c);
  info[n++] = 0;  // context: empty
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(hkdf);
  if (!ctx) return false;
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), n), OSSL_PARAM_construct_end()};
  bool ok = EVP_KDF_derive(ctx, out, length, params) > 0;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

std::size_t fixed_iv_length(const CipherSuite& suite) {
  if (suite.tls13 || suite.cipher == RecordCipher::chacha20_poly1305) return 12;
  return suite.cipher == RecordCipher::aes_gcm ? 4 : 0;
}

std::size_t hash_length(const char* digest) { return std::string_view(digest) == "SHA384" ? 48 : 32; }

void put_u64(unsigned char* out, std::uint64_t value) {
  for (int i = 7; i >= 0; --i, value >>= 8) out[i] = static_cast<unsigned char>(value);
}

const unsigned char* bytes(std::string_view view) { return reinterpret_cast<const unsigned char*>(view.data()); }

}  // namespace

const CipherSuite* find_cipher_suite(std::uint16_t id) {
  for (const CipherSuite& suite : kSuites)
    if (suite.id == id) return &suite;
  return nullptr;
}

std::string cipher_suite_name(std::uint16_t id) {
  if (const CipherSuite* suite = find_cipher_suite(id)) return suite->name;
  char name[8];
  std::snprintf(name, sizeof name, "0x%04X", id);
  return name;
}

bool derive_tls12_keys(const CipherSuite& suite, std::string_view master_secret, std::string_view client_random,
                       std::string_view server_random, TrafficKeys& client, TrafficKeys& server) {
  if (suite.cipher == RecordCipher::unsupported || suite.tls13) return false;
  std::size_t mac = suite.cipher == RecordCipher::aes_cbc ? suite.mac_length : 0;
  std::size_t key = suite.key_length, iv = fixed_iv_length(suite);
  std::array<unsigned char, 2 * (48 + 32 + 12)> block{};
  std::size_t length = 2 * (mac + key + iv);
  std::string seed = "key expansion";
  seed.append(server_random).append(client_random);
  if (!tls1_prf(suite.hash, master_secret, seed, block.data(), length)) return false;
  const char* p = reinterpret_cast<const char*>(block.data());
  client.mac_key.assign(p, mac);
  server.mac_key.assign(p + mac, mac);
  p += 2 * mac;
  client.key.assign(p, key);
  server.key.assign(p + key, key);
  p += 2 * key;
  client.iv.assign(p, iv);
  server.iv.assign(p + iv, iv);
  OPENSSL_cleanse(block.data(), block.size());
  return true;
}

bool derive_tls13_keys(const CipherSuite& suite, std::string_view traffic_secret, TrafficKeys& keys) {
  if (!suite.tls13 || suite.cipher == RecordCipher::unsupported) return false;
  unsigned char key[32], iv[12];
  if (!hkdf_expand_label(suite.hash, traffic_secret, "key", key, suite.key_length) ||
      !hkdf_expand_label(suite.hash, traffic_secret, "iv", iv, sizeof iv))
    return false;
  keys.key.assign(reinterpret_cast<const char*>(key), suite.key_length);
  keys.iv.assign(reinterpret_cast<const char*>(iv), sizeof iv);
  keys.mac_key.clear();
  OPENSSL_cleanse(key, sizeof key);
  return true;
}

bool next_tls13_traffic_secret(const CipherSuite& suite, std::string& traffic_secret) {
  if (!suite.tls13 || !suite.hash) return false;
  std::size_t length = hash_length(suite.hash);
  unsigned char next[48];
  if (!hkdf_expand_label(suite.hash, traffic_secret, "traffic upd", next, length)) return false;
  traffic_secret.assign(reinterpret_cast<const char*>(next), length);
  OPENSSL_cleanse(next, sizeof next);
  return true;
}

RecordOpener::RecordOpener() = default;

RecordOpener::~RecordOpener() {
  EVP_CIPHER_CTX_free(cipher_ctx_);
  EVP_MAC_CTX_free(mac_ctx_);
}

bool RecordOpener::install(const CipherSuite& suite, const TrafficKeys& keys, bool tls13, bool encrypt_then_mac) {
  installed_ = false;
  const EVP_CIPHER* cipher = fetched_cipher(suite.cipher, suite.key_length);
  if (!cipher || keys.key.size() != suite.key_length || keys.iv.size() > sizeof iv_) return false;
  if (!cipher_ctx_ && !(cipher_ctx_ = EVP_CIPHER_CTX_new())) return false;
  if (EVP_DecryptInit_ex(cipher_ctx_, cipher, nullptr, bytes(keys.key), nullptr) <= 0) return false;
  if (suite.cipher == RecordCipher::aes_cbc) {
    EVP_CIPHER_CTX_set_padding(cipher_ctx_, 0);
    if (!mac_ctx_ && !(mac_ctx_ = EVP_MAC_CTX_new(fetched_hmac()))) return false;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(suite.mac_digest), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(mac_ctx_, bytes(keys.mac_key), keys.mac_key.size(), params) <= 0) return false;
  }
  if (!buffer_) buffer_ = std::make_unique<unsigned char[]>(kMaxFragment);
  cipher_ = suite.cipher;
  tls13_ = tls13;
  encrypt_then_mac_ = encrypt_then_mac;
  mac_length_ = suite.cipher == RecordCipher::aes_cbc ? suite.mac_length : 0;
  iv_length_ = keys.iv.size();
  std::copy(keys.iv.begin(), keys.iv.end(), iv_);
  sequence_ = 0;
  installed_ = true;
  return true;
}

OpenStatus RecordOpener::open(std::string_view header, std::string_view fragment, std::string_view& plaintext,
                              std::uint8_t& content_type) {
  if (!installed_ || fragment.size() > kMaxFragment) return OpenStatus::malformed;
  content_type = static_cast<std::uint8_t>(header[0]);
  OpenStatus status = cipher_ == RecordCipher::aes_cbc ? open_cbc(header, fragment, plaintext)
                                                       : open_aead(header, fragment, plaintext, content_type);
  if (status == OpenStatus::ok) ++sequence_;
  return status;
}

OpenStatus RecordOpener::open_aead(std::string_view header, std::string_view fragment, std::string_view& plaintext,
                                   std::uint8_t& content_type) {
  bool explicit_nonce = !tls13_ && cipher_ == RecordCipher::aes_gcm;
  std::size_t overhead = kAeadTag + (explicit_nonce ? kTls12GcmExplicitNonce : 0);
  if (fragment.size() < overhead + (tls13_ ? 1 : 0)) return OpenStatus::malformed;
  std::size_t length = fragment.size() - overhead;
  const unsigned char* in = bytes(fragment);

  unsigned char nonce[12];
  if (explicit_nonce) {  // RFC 5288: 4-byte salt from the key block, 8 bytes sent in the record
    std::copy(iv_, iv_ + 4, nonce);
    std::copy(in, in + kTls12GcmExplicitNonce, nonce + 4);
    in += kTls12GcmExplicitNonce;
  } else {  // RFC 7905 / RFC 8446 5.3: the iv XOR the sequence number
    std::copy(iv_, iv_ + 12, nonce);
    unsigned char sequence[8];
    put_u64(sequence, sequence_);
    for (int i = 0; i < 8; ++i) nonce[4 + i] ^= sequence[i];
  }
  unsigned char aad[13];
  std::size_t aad_length;
  if (tls13_) {
    std::copy(header.begin(), header.begin() + 5, aad);
    aad_length = 5;
  } else {
    put_u64(aad, sequence_);
    aad[8] = static_cast<unsigned char>(header[0]);
    aad[9] = static_cast<unsigned char>(header[1]);
    aad[10] = static_cast<unsigned char>(header[2]);
    aad[11] = static_cast<unsigned char>(length >> 8);
    aad[12] = static_cast<unsigned char>(length);
    aad_length = 13;
  }
  int written = 0, final_written = 0;
  if (EVP_DecryptInit_ex(cipher_ctx_, nullptr, nullptr, nullptr, nonce) <= 0 ||
      EVP_DecryptUpdate(cipher_ctx_, nullptr, &written, aad, static_cast<int>(aad_length)) <= 0 ||
      EVP_DecryptUpdate(cipher_ctx_, buffer_.get(), &written, in, static_cast<int>(length)) <= 0 ||
      EVP_CIPHER_CTX_ctrl(cipher_ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kAeadTag),
                          const_cast<unsigned char*>(in + length)) <= 0 ||
      EVP_DecryptFinal_ex(cipher_ctx_, buffer_.get() + written, &final_written) <= 0)
    return OpenStatus::bad_key;
  std::size_t plain = length;
  if (tls13_) {  // RFC 8446 5.4: zero padding, then the real content type
    while (plain > 0 && buffer_[plain - 1] == 0) --plain;
    if (plain == 0) return OpenStatus::malformed;
    content_type = buffer_[--plain];
  }
  plaintext = std::string_view(reinterpret_cast<const char*>(buffer_.get()), plain);
  return OpenStatus::ok;
}

bool RecordOpener::record_mac(std::uint8_t type, std::string_view version, std::string_view covered,
                              unsigned char* mac) {
  unsigned char prefix[13];
  put_u64(prefix, sequence_);
  prefix[8] = type;
  prefix[9] = static_cast<unsigned char>(version[0]);
  prefix[10] = static_cast<unsigned char>(version[1]);
  prefix[11] = static_cast<unsigned char>(covered.size() >> 8);
  prefix[12] = static_cast<unsigned char>(covered.size());
  std::size_t written = 0;
  // A null key re-initialises HMAC with the key set at install().
  return EVP_MAC_init(mac_ctx_, nullptr, 0, nullptr) > 0 && EVP_MAC_update(mac_ctx_, prefix, sizeof prefix) > 0 &&
         EVP_MAC_update(mac_ctx_, bytes(covered), covered.size()) > 0 &&
         EVP_MAC_final(mac_ctx_, mac, &written, 64) > 0 && written == mac_length_;
}

OpenStatus RecordOpener::open_cbc(std::string_view header, std::string_view fragment, std::string_view& plaintext) {
  auto type = static_cast<std::uint8_t>(header[0]);
  std::string_view version = header.substr(1, 2);
  unsigned char mac[64];
  std::string_view encrypted = fragment;  // explicit IV + ciphertext
  if (encrypt_then_mac_) {                // RFC 7366: the MAC covers the IV and ciphertext
    if (fragment.size() < mac_length_ + 2 * kAesBlock) return OpenStatus::malformed;
    encrypted = fragment.substr(0, fragment.size() - mac_length_);
    if (!record_mac(type, version, encrypted, mac)) return OpenStatus::bad_key;
    if (CRYPTO_memcmp(mac, fragment.data() + encrypted.size(), mac_length_) != 0) return OpenStatus::bad_key;
  } else if (fragment.size() < kAesBlock + ((mac_length_ + 1 + kAesBlock - 1) / kAesBlock) * kAesBlock) {
    return OpenStatus::malformed;
  }
  if (encrypted.size() % kAesBlock != 0 || encrypted.size() < 2 * kAesBlock) return OpenStatus::malformed;
  std::size_t length = encrypted.size() - kAesBlock;
  int written = 0;
  EVP_CIPHER_CTX_set_padding(cipher_ctx_, 0);
  if (EVP_DecryptInit_ex(cipher_ctx_, nullptr, nullptr, nullptr, bytes(encrypted)) <= 0 ||
      EVP_DecryptUpdate(cipher_ctx_, buffer_.get(), &written, bytes(encrypted) + kAesBlock,
                        static_cast<int>(length)) <= 0 ||
      static_cast<std::size_t>(written) != length)
    return OpenStatus::bad_key;
  std::size_t padding = buffer_[length - 1];
  std::size_t trailer = padding + 1 + (encrypt_then_mac_ ? 0 : mac_length_);
  if (trailer > length) return OpenStatus::bad_key;
  for (std::size_t i = length - padding - 1; i < length; ++i)
    if (buffer_[i] != padding) return OpenStatus::bad_key;
  std::size_t plain = length - trailer;
  if (!encrypt_then_mac_) {  // MAC-then-encrypt: the MAC covers the plaintext, inside
    std::string_view content(reinterpret_cast<const char*>(buffer_.get()), plain);
    if (!record_mac(type, version, content, mac)) return OpenStatus::bad_key;
    if (CRYPTO_memcmp(mac, buffer_.get() + plain, mac_length_) != 0) return OpenStatus::bad_key;
  }
  plaintext = std::string_view(reinterpret_cast<const char*>(buffer_.get()), plain);
  return OpenStatus::ok;
}

}  // namespace doppel::plugins::raw::tls
