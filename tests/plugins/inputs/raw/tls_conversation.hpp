#pragma once
// Real TLS conversations for the decoder's tests and fuzz seeds: an OpenSSL client and server in
// one process over memory BIOs, every byte each side wrote to the wire recorded in order, and
// the key log lines the client's OpenSSL wrote (SSL_CTX_set_keylog_callback).
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tls_conversation {

struct Chunk {
  int direction;  // 0: client to server
  std::string bytes;
};

// One self-signed RSA certificate for every server (key generation is the slow part).
inline std::pair<EVP_PKEY*, X509*> server_identity() {
  static const std::pair<EVP_PKEY*, X509*> identity = [] {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("doppel.test"), -1,
                               -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    return std::pair{key, cert};
  }();
  return identity;
}

struct Options {
  int version = TLS1_3_VERSION;
  std::string ciphers;         // TLS 1.2 and below: SSL_CTX_set_cipher_list
  std::string ciphersuites;    // TLS 1.3: SSL_CTX_set_ciphersuites
  bool encrypt_then_mac = true;
  bool tickets = true;
  std::string sni = "api.doppel.test";
  std::vector<std::string> alpn;  // offered by the client, the first one chosen by the server
  std::string server_groups;      // e.g. "P-256" to force a HelloRetryRequest
  int security_level = -1;        // 0 for TLS 1.0
};

// A client and a server context, shared by connections that resume each other's sessions.
class Endpoints {
 public:
  explicit Endpoints(Options options) : options_(std::move(options)) {
    client_ = SSL_CTX_new(TLS_client_method());
    server_ = SSL_CTX_new(TLS_server_method());
    for (SSL_CTX* ctx : {client_, server_}) {
      SSL_CTX_set_min_proto_version(ctx, options_.version);
      SSL_CTX_set_max_proto_version(ctx, options_.version);
      if (options_.security_level >= 0) SSL_CTX_set_security_level(ctx, options_.security_level);
      if (!options_.ciphers.empty() && !SSL_CTX_set_cipher_list(ctx, options_.ciphers.c_str()))
        throw std::runtime_error("cipher list " + options_.ciphers);
      if (!options_.ciphersuites.empty() && !SSL_CTX_set_ciphersuites(ctx, options_.ciphersuites.c_str()))
        throw std::runtime_error("ciphersuites " + options_.ciphersuites);
      if (!options_.encrypt_then_mac) SSL_CTX_set_options(ctx, SSL_OP_NO_ENCRYPT_THEN_MAC);
      if (!options_.tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    }
    auto [key, cert] = server_identity();
    SSL_CTX_use_certificate(server_, cert);
    SSL_CTX_use_PrivateKey(server_, key);
    SSL_CTX_set_dh_auto(server_, 1);
    SSL_CTX_set_session_id_context(server_, reinterpret_cast<const unsigned char*>("doppel"), 6);
    SSL_CTX_set_session_cache_mode(client_, SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set_app_data(client_, this);
    SSL_CTX_set_keylog_callback(client_, [](const SSL* ssl, const char* line) {
      auto* self = static_cast<Endpoints*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
      self->keylog_.append(line).append("\n");
    });
    if (!options_.alpn.empty()) {
      std::string wire;
      for (auto& protocol : options_.alpn) wire.append(1, static_cast<char>(protocol.size())).append(protocol);
      SSL_CTX_set_alpn_protos(client_, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned>(wire.size()));
      SSL_CTX_set_alpn_select_cb(
          server_,
          [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int,
             void*) {
            *outlen = in[0];
            *out = in + 1;
            return SSL_TLSEXT_ERR_OK;
          },
          nullptr);
    }
  }
  ~Endpoints() {
    SSL_CTX_free(client_);
    SSL_CTX_free(server_);
  }
  Endpoints(const Endpoints&) = delete;
  Endpoints& operator=(const Endpoints&) = delete;

  SSL_CTX* client() const { return client_; }
  SSL_CTX* server() const { return server_; }
  const Options& options() const { return options_; }
  // The key log lines written since the last take.
  std::string take_keylog() { return std::exchange(keylog_, {}); }

 private:
  Options options_;
  SSL_CTX* client_ = nullptr;
  SSL_CTX* server_ = nullptr;
  std::string keylog_;
};

class Connection {
 public:
  explicit Connection(Endpoints& endpoints, SSL_SESSION* resume = nullptr) {
    ssl_[0] = SSL_new(endpoints.client());
    ssl_[1] = SSL_new(endpoints.server());
    for (SSL* ssl : ssl_) SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(ssl_[0]);
    SSL_set_accept_state(ssl_[1]);
    if (!endpoints.options().sni.empty()) SSL_set_tlsext_host_name(ssl_[0], endpoints.options().sni.c_str());
    if (!endpoints.options().server_groups.empty())
      SSL_set1_groups_list(ssl_[1], endpoints.options().server_groups.c_str());
    if (resume) SSL_set_session(ssl_[0], resume);
  }
  ~Connection() {
    for (SSL* ssl : ssl_) SSL_free(ssl);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs the handshake; false when OpenSSL refused it (the wire holds what was sent anyway).
  bool handshake() {
    for (int round = 0; round < 50; ++round) {
      bool done = true;
      for (SSL* ssl : ssl_) {
        if (SSL_is_init_finished(ssl)) continue;
        done = false;
        int result = SSL_do_handshake(ssl);
        if (result <= 0 && SSL_get_error(ssl, result) != SSL_ERROR_WANT_READ) {
          ERR_clear_error();
          pump();
          return false;
        }
      }
      pump();
      if (done) return true;
    }
    return false;
  }
  // SSL_write of all of `bytes` by side `direction` (0: client), then delivered to the peer.
  void write(int direction, std::string_view bytes) {
    sent_[direction].append(bytes);
    while (!bytes.empty()) {
      std::size_t written = 0;
      if (SSL_write_ex(ssl_[direction], bytes.data(), bytes.size(), &written) <= 0)
        throw std::runtime_error("SSL_write failed");
      bytes.remove_prefix(written);
      pump();
    }
    pump();
  }
  // Moves every byte written to the wire to the other side and lets both read.
  void pump() {
    for (bool moved = true; moved;) {
      moved = false;
      for (int side = 0; side < 2; ++side) {
        BIO* out = SSL_get_wbio(ssl_[side]);
        char buffer[65536];
        int n;
        while ((n = BIO_read(out, buffer, sizeof buffer)) > 0) {
          std::string_view bytes(buffer, static_cast<std::size_t>(n));
          if (!wire_.empty() && wire_.back().direction == side && !split_writes_)
            wire_.back().bytes.append(bytes);
          else
            wire_.push_back({side, std::string(bytes)});
          BIO_write(SSL_get_rbio(ssl_[1 - side]), buffer, n);
          moved = true;
        }
      }
      for (int side = 0; side < 2; ++side) {
        if (!SSL_is_init_finished(ssl_[side])) {
          SSL_do_handshake(ssl_[side]);
          ERR_clear_error();
          continue;
        }
        char buffer[65536];
        std::size_t n = 0;
        while (SSL_read_ex(ssl_[side], buffer, sizeof buffer, &n) > 0) received_[side].append(buffer, n);
        ERR_clear_error();
      }
    }
  }
  SSL* ssl(int side) { return ssl_[side]; }
  const std::vector<Chunk>& wire() const { return wire_; }
  const std::string& sent(int direction) const { return sent_[direction]; }
  const std::string& received(int direction) const { return received_[direction]; }
  // Keep each BIO_read as its own chunk (else consecutive bytes of one side are one chunk).
  void split_writes(bool split) { split_writes_ = split; }
  SSL_SESSION* session() { return SSL_get1_session(ssl_[0]); }

 private:
  SSL* ssl_[2] = {};
  std::vector<Chunk> wire_;
  std::string sent_[2];
  std::string received_[2];
  bool split_writes_ = false;
};

}  // namespace tls_conversation
