#include "tls_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace doppel::plugins {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// Opens `path` the way OpenSSL will, so a missing or unreadable file is reported with the
// system's reason rather than OpenSSL's "system lib". Returns the file's text.
std::string read_file(const std::string& option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TlsSetupError(option, option + ": cannot read \"" + path + "\": " + std::strerror(errno));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// c_rehash / `openssl rehash` names: 8 hex digits of the subject hash, '.', a sequence number.
bool is_hashed_certificate_name(const std::string& name) {
  if (name.size() < 10 || name[8] != '.') return false;
  for (std::size_t i = 0; i < 8; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
  for (std::size_t i = 9; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

void load_trust(asio::ssl::context& context, const std::string& ca_path) {
  boost::system::error_code ec;
  if (ca_path.empty()) {
    context.set_default_verify_paths(ec);
    if (ec) throw TlsSetupError("tls_ca", "cannot load the system's CA certificates: " + ec.message());
    return;
  }
  std::error_code fs_error;
  if (fs::is_directory(ca_path, fs_error)) {
    // OpenSSL looks certificates up in the directory by hash only when verifying: without a
    // hashed name in it, every target would be rejected at run time.
    bool hashed = false;
    for (const auto& entry : fs::directory_iterator(ca_path, fs_error))
      if (is_hashed_certificate_name(entry.path().filename().string())) hashed = true;
    if (fs_error)
      throw TlsSetupError("tls_ca", "tls_ca: cannot read the directory \"" + ca_path + "\": " + fs_error.message());
    if (!hashed)
      throw TlsSetupError("tls_ca", "tls_ca: the directory \"" + ca_path +
                                        "\" holds no hashed certificate names (HASH.0); run `openssl rehash` on it, "
                                        "or name a PEM bundle file");
    context.add_verify_path(ca_path, ec);
  } else {
    read_file("tls_ca", ca_path);
    context.load_verify_file(ca_path, ec);
  }
  if (ec) throw TlsSetupError("tls_ca", "tls_ca: no CA certificate in \"" + ca_path + "\": " + ec.message());
}

void load_client_certificate(asio::ssl::context& context, const std::string& cert_path, const std::string& key_path) {
  read_file("tls_cert", cert_path);
  std::string key_text = read_file("tls_key", key_path);
  // An encrypted key would make OpenSSL ask for a pass phrase on the terminal.
  context.set_password_callback([](std::size_t, asio::ssl::context::password_purpose) { return std::string(); });
  boost::system::error_code ec;
  // The key before the certificate: OpenSSL then drops a key that does not match instead of
  // refusing it with "key values mismatch", and the check below says which files disagree.
  context.use_private_key_file(key_path, asio::ssl::context::pem, ec);
  if (ec) {
    std::string why = key_text.find("ENCRYPTED") != std::string::npos
                          ? "it is encrypted, and only unencrypted keys are read (openssl pkey -in KEY -out PLAIN)"
                          : ec.message();
    throw TlsSetupError("tls_key", "tls_key: no usable PEM private key in \"" + key_path + "\": " + why);
  }
  context.use_certificate_chain_file(cert_path, ec);
  if (ec) throw TlsSetupError("tls_cert", "tls_cert: no PEM certificate in \"" + cert_path + "\": " + ec.message());
  if (SSL_CTX_check_private_key(context.native_handle()) != 1)
    throw TlsSetupError("tls_key", "tls_key: the private key in \"" + key_path +
                                       "\" does not match the certificate in \"" + cert_path + "\" (tls_cert)");
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_tls_client_context(const TlsClientConfig& config) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  if (config.skip_verify) {
    context->set_verify_mode(asio::ssl::verify_none);
  } else {
    load_trust(*context, config.ca_path);
    context->set_verify_mode(asio::ssl::verify_peer);
  }
  if (!config.cert_path.empty()) load_client_certificate(*context, config.cert_path, config.key_path);
  return context;
}

bool is_valid_server_name(const std::string& name) {
  boost::system::error_code not_address;
  asio::ip::make_address(name, not_address);
  if (!not_address) return true;
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') return false;
  return true;
}

std::unique_ptr<TlsStream> make_target_stream(const asio::any_io_executor& executor, const TlsClientConfig& config,
                                              const std::string& target_host) {
  auto stream = std::make_unique<TlsStream>(executor, *config.context);
  const std::string& name = config.server_name.empty() ? target_host : config.server_name;
  SSL* ssl = stream->native_handle();
  boost::system::error_code not_address;
  asio::ip::make_address(name, not_address);
  const bool is_address = !not_address;
  if (!is_address) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (!config.skip_verify) {
    // Checked by OpenSSL as part of the chain, so a mismatch has a verify result of its own
    // (hostname or IP address mismatch) that certificate_rejection reports.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (is_address) X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    else X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
  }
  return stream;
}

std::optional<std::string> certificate_rejection(TlsStream& stream) {
  SSL* ssl = stream.native_handle();
  if (SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE) return std::nullopt;
  long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return std::nullopt;
  return std::string(X509_verify_cert_error_string(result));
}

}  // namespace doppel::plugins
