#pragma once
// TLS towards an https target: the client context (whom to trust, which certificate to
// present) built once from the options, and what each connection sets on its own stream (the
// name sent as SNI and verified in the target's certificate).
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace doppel::plugins {

struct TlsClientConfig {
  bool skip_verify = false;    // tls_skip_verify
  std::string ca_path;         // tls_ca: a PEM bundle or a hashed directory; empty: the system's
  std::string cert_path;       // tls_cert: client certificate chain (PEM); empty: none presented
  std::string key_path;        // tls_key: its private key (PEM)
  std::string server_name;     // tls_server_name; empty: the target's host
  // Built from the above by make_tls_client_context; shared by every connection.
  std::shared_ptr<boost::asio::ssl::context> context;
};

// A file named by an option that cannot be used; `option` is the one to point at.
class TlsSetupError : public std::runtime_error {
 public:
  TlsSetupError(std::string option, const std::string& message)
      : std::runtime_error(message), option_(std::move(option)) {}
  const std::string& option() const { return option_; }

 private:
  std::string option_;
};

// Loads the trust store and the client certificate named in `config`, and checks that the key
// matches the certificate. Throws TlsSetupError.
std::shared_ptr<boost::asio::ssl::context> make_tls_client_context(const TlsClientConfig& config);

// A valid tls_server_name: a DNS name or an IP address.
bool is_valid_server_name(const std::string& name);

using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

// A TLS stream to the target that sends SNI (unless the name is an IP address, which SNI may
// not carry) and, unless verification is skipped, accepts only a certificate for that name or
// address. The name is config.server_name, else `target_host`.
std::unique_ptr<TlsStream> make_target_stream(const boost::asio::any_io_executor& executor,
                                              const TlsClientConfig& config, const std::string& target_host);

// After a failed handshake: why the target's certificate was rejected (OpenSSL's words, e.g.
// "hostname mismatch"), or nullopt when the failure was something else.
std::optional<std::string> certificate_rejection(TlsStream& stream);

}  // namespace doppel::plugins
