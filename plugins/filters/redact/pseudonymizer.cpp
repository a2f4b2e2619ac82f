#include "pseudonymizer.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace doppel::plugins {

Pseudonymizer::Pseudonymizer(std::string_view key) {
  mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac_) ctx_ = EVP_MAC_CTX_new(mac_);
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0), OSSL_PARAM_END};
  // An empty key would make EVP_MAC_init keep "no key"; the configuration never passes one.
  if (!ctx_ || key.empty() ||
      EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1) {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
    throw std::runtime_error("cannot set up HMAC-SHA256 (OpenSSL)");
  }
}

Pseudonymizer::~Pseudonymizer() {
  EVP_MAC_CTX_free(ctx_);
  EVP_MAC_free(mac_);
}

std::string Pseudonymizer::token(std::string_view value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  std::size_t length = 0;
  // A null key re-initialises with the key already set: the hashed key blocks are reused,
  // so a token costs the HMAC of the value alone.
  if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1 ||
      EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(value.data()), value.size()) != 1 ||
      EVP_MAC_final(ctx_, digest, &length, sizeof digest) != 1 || length * 2 < kHexDigits)
    throw std::runtime_error("HMAC-SHA256 failed (OpenSSL)");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "REDACTED-";
  out.reserve(out.size() + kHexDigits);
  for (std::size_t i = 0; i < kHexDigits / 2; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}

std::string random_key() {
  std::string key(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1)
    throw std::runtime_error("cannot draw a random key (OpenSSL RAND_bytes failed)");
  return key;
}

const std::string& process_random_key() {
  static const std::string key = random_key();
  return key;
}

}  // namespace doppel::plugins
