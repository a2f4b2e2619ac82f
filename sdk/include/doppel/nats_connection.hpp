#pragma once
// Connection options shared by the NATS input and output: the option schema (declared once,
// as data), its parsing into NatsConnectionConfig, and the natsOptions built from it.
//
// Header-only and opt-in: it needs the NATS C client (<nats/nats.h>, Debian's libnats-dev),
// so only plugins that link libnats include it; the SDK library itself does not depend on it.
#include <nats/nats.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "doppel/options.hpp"

namespace doppel::nats {

struct NatsConnectionConfig {
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  std::string credentials;  // .creds file (JWT + NKey seed)
  std::string token;
  std::string user, password;
  std::string tls_ca, tls_cert, tls_key;
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
  std::chrono::nanoseconds reconnect_wait = std::chrono::milliseconds(250);
  std::string name;  // shown by the server (`nats server report connections`)
};

inline std::vector<OptionSpec> connection_options() {
  return {
      option("servers", OptionType::string_list,
             "NATS servers, tried in random order and on every reconnect (nats://host:port or tls://host:port)")
          .default_value(Value::array({"nats://127.0.0.1:4222"})),
      option("credentials", OptionType::string, "User credentials file (.creds: JWT and NKey seed)"),
      option("token", OptionType::string, "Authentication token"),
      option("user", OptionType::string, "User name (with `password`)"),
      option("password", OptionType::string, "Password of `user`"),
      option("tls_ca", OptionType::string, "CA certificate file (PEM) that signed the servers' certificates; enables TLS"),
      option("tls_cert", OptionType::string, "Client certificate file (PEM) for mutual TLS, with `tls_key`"),
      option("tls_key", OptionType::string, "Private key file (PEM) of `tls_cert`"),
      option("connect_timeout", OptionType::duration, "Longest wait for one connection attempt to a server")
          .default_value("2s"),
      option("reconnect_wait", OptionType::duration,
             "Pause between two rounds of reconnection attempts (reconnection never gives up)")
          .default_value("250ms"),
  };
}

inline NatsConnectionConfig parse_connection_options(const Options& options, const std::string& name) {
  NatsConnectionConfig config;
  config.servers = options.strings("servers");
  if (config.servers.empty()) options.fail("servers", "list at least one server");
  auto text = [&](const char* key) { return options.has(key) ? options.string(key) : std::string(); };
  config.credentials = text("credentials");
  config.token = text("token");
  config.user = text("user");
  config.password = text("password");
  config.tls_ca = text("tls_ca");
  config.tls_cert = text("tls_cert");
  config.tls_key = text("tls_key");
  if (!config.password.empty() && config.user.empty()) options.fail("password", "`password` needs `user`");
  if (config.tls_cert.empty() != config.tls_key.empty())
    options.fail(config.tls_cert.empty() ? "tls_key" : "tls_cert", "`tls_cert` and `tls_key` go together");
  int methods = !config.credentials.empty() + !config.token.empty() + !config.user.empty();
  if (methods > 1) options.fail("credentials", "choose one of `credentials`, `token`, `user`/`password`");
  config.connect_timeout = options.duration("connect_timeout");
  config.reconnect_wait = options.duration("reconnect_wait");
  if (config.connect_timeout.count() <= 0) options.fail("connect_timeout", "connect_timeout must be positive");
  if (config.reconnect_wait.count() <= 0) options.fail("reconnect_wait", "reconnect_wait must be positive");
  config.name = name;
  return config;
}

inline long long to_ms(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// natsOptions owned by a unique_ptr.
struct NatsOptionsDeleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
using NatsOptionsPtr = std::unique_ptr<natsOptions, NatsOptionsDeleter>;

// Builds the client options: reconnect forever, retry a failed first connect in the background
// (`connected` is called once connected), and the authentication and TLS settings.
// Throws std::runtime_error naming the setting that the client refused (e.g. an unreadable file).
inline NatsOptionsPtr make_nats_options(const NatsConnectionConfig& config, natsConnectionHandler connected,
                                        void* closure) {
  natsOptions* raw = nullptr;
  if (natsOptions_Create(&raw) != NATS_OK) throw std::runtime_error("cannot create NATS client options");
  NatsOptionsPtr opts(raw);
  auto check = [](natsStatus s, const std::string& what) {
    if (s != NATS_OK)
      throw std::runtime_error(what + ": " + natsStatus_GetText(s) + " (" + nats_GetLastError(nullptr) + ")");
  };
  std::vector<const char*> servers;
  for (auto& s : config.servers) servers.push_back(s.c_str());
  check(natsOptions_SetServers(raw, servers.data(), static_cast<int>(servers.size())), "servers");
  check(natsOptions_SetName(raw, config.name.c_str()), "name");
  check(natsOptions_SetTimeout(raw, to_ms(config.connect_timeout)), "connect_timeout");
  check(natsOptions_SetMaxReconnect(raw, -1), "max_reconnect");
  check(natsOptions_SetReconnectWait(raw, to_ms(config.reconnect_wait)), "reconnect_wait");
  check(natsOptions_SetRetryOnFailedConnect(raw, true, connected, closure), "retry_on_failed_connect");
  if (!config.credentials.empty())
    check(natsOptions_SetUserCredentialsFromFiles(raw, config.credentials.c_str(), nullptr),
          "credentials " + config.credentials);
  if (!config.token.empty()) check(natsOptions_SetToken(raw, config.token.c_str()), "token");
  if (!config.user.empty())
    check(natsOptions_SetUserInfo(raw, config.user.c_str(), config.password.c_str()), "user");
  if (!config.tls_ca.empty() || !config.tls_cert.empty()) {
    check(natsOptions_SetSecure(raw, true), "tls");
    if (!config.tls_ca.empty())
      check(natsOptions_LoadCATrustedCertificates(raw, config.tls_ca.c_str()), "tls_ca " + config.tls_ca);
    if (!config.tls_cert.empty())
      check(natsOptions_LoadCertificatesChain(raw, config.tls_cert.c_str(), config.tls_key.c_str()),
            "tls_cert " + config.tls_cert);
  }
  return opts;
}

inline std::string servers_text(const NatsConnectionConfig& config) {
  std::string all;
  for (auto& s : config.servers) all += (all.empty() ? "" : ",") + s;
  return all;
}

}  // namespace doppel::nats

#include "doppel/gor.hpp"

namespace doppel::nats {

// A NATS message body is one or more .gor records joined by the .gor separator (a request and
// its original response travel together), i.e. a tiny .gor file any .gor reader can split.
inline std::string join_records(const std::vector<const Message*>& messages) {
  std::string body;
  for (const Message* m : messages) {
    if (!body.empty()) body += gor::kSeparator;
    body += gor::format_record(*m);
  }
  return body;
}

// The records of a body, as views into it; a trailing separator is tolerated.
inline std::vector<std::string_view> split_records(std::string_view body) {
  std::vector<std::string_view> records;
  while (!body.empty()) {
    auto at = body.find(gor::kSeparator);
    records.push_back(body.substr(0, at));
    if (at == std::string_view::npos) break;
    body.remove_prefix(at + gor::kSeparator.size());
  }
  return records;
}

}  // namespace doppel::nats
