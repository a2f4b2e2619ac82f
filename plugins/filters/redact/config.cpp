// Plugin `redact`: options, their parsing into RedactFilterConfig, and registration.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "doppel/plugin.hpp"
#include "redact_filter.hpp"

namespace doppel::plugins {
namespace {

// Shorter keys can be searched; 16 bytes (128 bits) is the least HMAC guidance accepts.
constexpr std::size_t kMinKeyBytes = 16;
// A key file holds the key alone: a bigger file is a wrong path (and /dev/urandom never ends).
constexpr std::size_t kMaxKeyFileBytes = 4096;

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// The key in `path`, read at configuration time; one trailing newline is not part of it
// (`openssl rand -hex 32 > key` writes one, an editor may add one).
std::string read_key_file(const Options& options, const std::string& path, std::string& warning) {
  auto fail = [&](const std::string& why) { options.fail("key_file", "key file " + path + " " + why); };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(std::string("cannot be opened: ") + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    fail("is not a regular file");
  }
  // Like ssh with a private key: a key others can read or replace protects nothing.
  if (info.st_mode & (S_IRWXO | S_IWGRP)) {
    ::close(fd);
    fail("is " + std::string(info.st_mode & S_IWGRP ? "writable by its group" : "accessible to every user") +
         " (mode " + mode_text(info.st_mode) + "): chmod 600 " + path);
  }
  if (info.st_mode & S_IRGRP)
    warning = "key file " + path + " is readable by its group (mode " + mode_text(info.st_mode) +
              "): every member can compute tokens for guessed values; chmod 600 unless the group is doppel's alone";
  std::string key(kMaxKeyFileBytes + 1, '\0');
  std::size_t size = 0;
  while (size < key.size()) {
    ssize_t n = ::read(fd, key.data() + size, key.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      fail(std::string("cannot be read: ") + std::strerror(error));
    }
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (size > kMaxKeyFileBytes)
    fail("is larger than " + std::to_string(kMaxKeyFileBytes) + " bytes; it should hold the key alone");
  key.resize(size);
  if (key.ends_with("\r\n")) key.resize(key.size() - 2);
  else if (key.ends_with('\n')) key.pop_back();
  if (key.size() < kMinKeyBytes)
    fail("holds " + std::to_string(key.size()) + " bytes; a key needs at least " + std::to_string(kMinKeyBytes) +
         " (make one with: (umask 077; openssl rand -hex 32 > " + path + "))");
  return key;
}

RedactFilterConfig make_config(const Options& options) {
  RedactFilterConfig config;
  config.headers = options.strings("headers");
  try {
    config.fields = json::JsonPathSet::parse(options.strings("fields"));
  } catch (const json::JsonPathError& e) {
    options.fail("fields", e.what());
  }
  for (const auto& p : config.fields.paths())
    if (p.matches(json::ConcretePath{}))
      options.fail("fields", "\"" + p.text() + "\" would redact the whole body; name the fields to redact");
  if (config.headers.empty() && config.fields.empty())
    options.fail("headers", "redact needs at least one entry in \"headers\" or \"fields\"");
  config.drop_unreadable = options.string("on_unreadable") == "drop";
  config.descriptors = protobuf::descriptor_set_option(options);
  auto max_grpc_requests = options.integer("max_grpc_requests");
  if (max_grpc_requests < 1) options.fail("max_grpc_requests", "max_grpc_requests must be at least 1");
  config.max_grpc_requests = static_cast<std::size_t>(max_grpc_requests);
  config.grpc_request_ttl = options.duration("grpc_request_ttl");
  if (config.grpc_request_ttl.count() <= 0) options.fail("grpc_request_ttl", "grpc_request_ttl must be positive");

  if (options.has("key") && options.has("key_file")) options.fail("key_file", "set key or key_file, not both");
  if (options.has("key")) {
    config.key = options.string("key");
    if (config.key.size() < kMinKeyBytes)
      options.fail("key", "the key has " + std::to_string(config.key.size()) + " bytes; it needs at least " +
                              std::to_string(kMinKeyBytes) + " (better: key_file, kept out of the pipeline)");
  } else if (options.has("key_file")) {
    config.key = read_key_file(options, options.string("key_file"), config.key_file_warning);
  } else {
    try {
      config.key = process_random_key();
    } catch (const std::exception& e) {
      options.fail("key_file", e.what());
    }
    config.random_key = true;
  }
  return config;
}

PluginDefinition redact_filter_definition() {
  PluginDefinition def;
  def.name = "redact";
  def.role = Role::filter;
  def.description =
      "Replaces header values and JSON, form, multipart and query fields (and gRPC message fields, with "
      "descriptor_set) by REDACTED-<keyed hash (HMAC-SHA256) prefix>, keeping every other byte";
  def.accepts = KindSet::http();
  def.produces = KindSet::http();
  def.passes_through = true;
  def.requests_only = false;  // responses carry secrets too
  def.options = {
      option("headers", OptionType::string_list,
             "Header names whose values are redacted (case-insensitive; every instance, folded continuation lines "
             "and chunked trailers included)")
          .default_value(Value::array({})),
      option("fields", OptionType::string_list,
             "JSON paths redacted in JSON bodies, every duplicate too. `password` is the top-level key only; "
             "`**.password` is that key at any depth, in arrays too. Paths that can name a single key "
             "(`password`, `**.password`, `*`) also redact form-urlencoded fields, multipart/form-data parts "
             "and query parameters, whose names are percent-decoded and also read as paths when bracketed "
             "(`user[password]` is `user.password`); a JSON part of a multipart form is looked into")
          .default_value(Value::array({})),
      option("on_unreadable", OptionType::string,
             "A JSON, form, multipart or gRPC body that cannot be read (invalid JSON, broken gzip, a multipart body "
             "without its boundary, a gRPC body without descriptor_set or that does not decode): \"drop\" it "
             "(counted), or \"pass\" it unredacted (counted)")
          .default_value("drop")
          .choices({"drop", "pass"}),
      option("descriptor_set", OptionType::string,
             "FileDescriptorSet of the gRPC service (protoc --descriptor_set_out=api.pb --include_imports "
             "api.proto); relative to the directory doppel runs in. With it, `fields` are redacted in every message "
             "of a gRPC body (content-type application/grpc*), read as proto3 JSON with field names as in the "
             ".proto: a request's by its method's input type, a response's by the output type of its request's "
             "method (the request must pass through this filter first). A changed message is re-encoded and framed "
             "uncompressed; only string fields (and string elements of repeated fields) can hold a token. "
             "Without it a gRPC body cannot be read, and on_unreadable decides"),
      option("max_grpc_requests", OptionType::integer,
             "gRPC requests whose method is remembered by id for their responses (descriptor_set); beyond it the "
             "oldest is forgotten (grpc_requests_evicted), and a response after that is grpc_request_not_seen")
          .default_value(65536),
      option("grpc_request_ttl", OptionType::duration,
             "How long a gRPC request's method is remembered for its responses (the original and its replays)")
          .default_value("60s"),
      option("key_file", OptionType::string,
             "File holding the secret key of the keyed hash (a trailing newline is not part of it), read at "
             "startup: at least 16 bytes, mode 600 (640 is accepted with a warning; a file others can read, or its "
             "group write, is refused). Without key_file or key, a random key is drawn per process: tokens match within one "
             "run but not between runs or hosts — use the same key_file wherever tokens are compared (record "
             "now, replay later; several capture agents)"),
      option("key", OptionType::string,
             "The secret key itself (at least 16 bytes). Discouraged: pipelines get committed and shared, and "
             "anyone with the key can test guesses against tokens; prefer key_file"),
  };
  def.metrics = {
      {"redacted_values", "header values and fields replaced"},
      {"unredacted_bodies", "unreadable bodies passed on unredacted (on_unreadable = \"pass\")"},
      {"dropped.invalid_json",
       "messages whose JSON body (or a JSON part of a multipart body) does not parse, so could not be redacted"},
      {"dropped.invalid_multipart", "messages whose multipart/form-data body has no boundary or does not parse"},
      {"dropped.undecodable_body", "messages whose chunked/gzip/deflate body could not be decoded"},
      {"dropped.grpc_no_descriptor_set", "messages with a gRPC body, which cannot be read without descriptor_set"},
      {"dropped.grpc_unknown_method", "gRPC messages whose method (the request path) is not in the descriptor set"},
      {"dropped.grpc_request_not_seen",
       "gRPC responses whose request did not pass through this filter, so their message type is unknown"},
      {"dropped.grpc_undecodable",
       "gRPC messages whose body cannot be split into messages (truncated length prefix, bad compression) or "
       "whose messages do not decode as the method's type"},
      {"dropped.grpc_unencodable",
       "gRPC messages whose redacted message cannot be encoded again (a field that is not a string was named)"},
      {"dropped.unparseable_message", "messages that are not parseable HTTP"},
      {"grpc_requests_evicted",
       "gRPC requests' methods forgotten before their time because max_grpc_requests were kept"},
      {"table.grpc_requests",
       "gRPC requests whose method is remembered for their responses now (gauge); bound: max_grpc_requests (the "
       "oldest forgotten: grpc_requests_evicted), expiry: grpc_request_ttl"},
  };
  def.create_stage = [](const Options& options) -> std::unique_ptr<Stage> {
    return std::make_unique<RedactFilter>(make_config(options));
  };
  return def;
}

}  // namespace
}  // namespace doppel::plugins

DOPPEL_PLUGIN(doppel::plugins::redact_filter_definition);
