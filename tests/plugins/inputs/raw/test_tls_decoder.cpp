// TlsDecoder against real TLS: OpenSSL clients and servers in process (tls_conversation.hpp),
// the bytes they wrote fed to the decoder in segments of every size, the plaintext compared
// with what SSL_write sent, byte for byte.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "http_stream_parser.hpp"
#include "tls_conversation.hpp"
#include "tls_decoder.hpp"

using namespace doppel::plugins::raw;
using tls_conversation::Chunk;
using tls_conversation::Connection;
using tls_conversation::Endpoints;
using tls_conversation::Options;

namespace {

class CountingMemory : public MemoryAccount {
 public:
  bool reserve(std::size_t bytes) override {
    if (limit && held + bytes > limit) return false;
    held += bytes;
    peak = std::max(peak, held);
    return true;
  }
  void release(std::size_t bytes) override {
    REQUIRE(bytes <= held);
    held -= bytes;
  }
  std::size_t held = 0, peak = 0, limit = 0;
};

struct Outcome : TlsDecoderListener {
  std::string plaintext[2];
  std::vector<int> order;  // direction of each plaintext piece, merged when consecutive
  TlsFailure failure = TlsFailure::none;
  int failures = 0;
  bool keyed = false;
  bool plaintext_before_keyed = false;
  void on_plaintext(int direction, std::string_view bytes, std::int64_t) override {
    if (!keyed) plaintext_before_keyed = true;
    plaintext[direction].append(bytes);
    if (order.empty() || order.back() != direction) order.push_back(direction);
  }
  void on_keyed() override { keyed = true; }
  void on_failure(TlsFailure why) override {
    failure = why;
    ++failures;
  }
};

enum class Split { as_written, one_byte, random, coalesced };
constexpr Split kSplits[] = {Split::as_written, Split::one_byte, Split::random, Split::coalesced};

// Feeds `wire` in segments cut as `split` says; timestamps one millisecond apart.
void feed(TlsDecoder& decoder, const std::vector<Chunk>& wire, Split split, std::int64_t& ts,
          std::uint32_t seed = 1) {
  std::mt19937 random(seed);
  std::vector<Chunk> chunks;
  for (const Chunk& chunk : wire) {
    if (split == Split::coalesced && !chunks.empty() && chunks.back().direction == chunk.direction)
      chunks.back().bytes += chunk.bytes;
    else
      chunks.push_back(chunk);
  }
  for (const Chunk& chunk : chunks) {
    std::string_view bytes = chunk.bytes;
    while (!bytes.empty()) {
      std::size_t n = bytes.size();
      if (split == Split::one_byte) n = 1;
      if (split == Split::random) n = std::min<std::size_t>(bytes.size(), 1 + random() % 3000);
      decoder.data(chunk.direction, bytes.substr(0, n), ts += 1'000'000);
      bytes.remove_prefix(n);
    }
  }
}

struct Decoded {
  Outcome outcome;
  TlsInfo info;
  std::size_t memory_left = 0;
};

Decoded decode(const std::vector<Chunk>& wire, TlsKeyLog& keys, Split split = Split::as_written,
               TlsLimits limits = {}) {
  Decoded result;
  CountingMemory memory;
  {
    TlsDecoder decoder(keys, result.outcome, &memory, limits);
    std::int64_t ts = 1'000'000'000;
    feed(decoder, wire, split, ts, 7);
    decoder.close();
    result.info = decoder.info();
  }
  result.memory_left = memory.held;
  return result;
}

Decoded decode(const std::vector<Chunk>& wire, std::string_view keylog, Split split = Split::as_written) {
  TlsKeyLog keys;
  keys.add(keylog);
  return decode(wire, keys, split);
}

std::string body(std::size_t size, char seed) {
  std::string text(size, '\0');
  for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>(seed + i * 131 % 251);
  return text;
}

// An HTTP exchange: a request, a response with a 1 MB body, then a small request and response.
void exchange(Connection& connection) {
  connection.write(0, "POST /upload HTTP/1.1\r\nHost: api.doppel.test\r\nContent-Length: 5\r\n\r\nhello");
  std::string big = body(1 << 20, 'a');
  connection.write(1, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + big);
  connection.write(0, "GET /next HTTP/1.1\r\nHost: api.doppel.test\r\n\r\n");
  connection.write(1, "HTTP/1.1 204 No Content\r\n\r\n");
}

void check_decrypted(const Decoded& decoded, Connection& connection) {
  CHECK(decoded.outcome.failure == TlsFailure::none);
  CHECK(decoded.outcome.keyed);
  CHECK_FALSE(decoded.outcome.plaintext_before_keyed);
  for (int direction : {0, 1}) {
    CAPTURE(direction);
    CAPTURE(decoded.outcome.plaintext[direction].size());
    CAPTURE(connection.sent(direction).size());
    CHECK((decoded.outcome.plaintext[direction] == connection.sent(direction)));
  }
  CHECK(decoded.memory_left == 0);
}

struct Suite {
  const char* openssl_name;
  const char* iana_name;
};

}  // namespace

TEST_CASE("TLS 1.3: every supported suite decrypts in segments of any size") {
  const Suite suites[] = {{"TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"},
                          {"TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"},
                          {"TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"}};
  for (const Suite& suite : suites) {
    CAPTURE(std::string(suite.openssl_name));
    Options options;
    options.ciphersuites = suite.openssl_name;
    options.alpn = {"h2", "http/1.1"};
    Endpoints endpoints(options);
    Connection connection(endpoints);
    REQUIRE(connection.handshake());
    exchange(connection);
    std::string keylog = endpoints.take_keylog();
    for (Split split : kSplits) {
      CAPTURE(static_cast<int>(split));
      Decoded decoded = decode(connection.wire(), keylog, split);
      check_decrypted(decoded, connection);
      CHECK(decoded.info.version == "TLSv1.3");
      CHECK(decoded.info.cipher == suite.iana_name);
      CHECK(decoded.info.sni == "api.doppel.test");
      CHECK(decoded.info.alpn == "h2");
      CHECK_FALSE(decoded.info.resumed);
    }
  }
}

TEST_CASE("TLS 1.2: GCM, ChaCha20 and CBC suites, Encrypt-then-MAC on and off") {
  const Suite suites[] = {
      {"ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
      {"ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
      {"ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
      {"AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"},
      {"ECDHE-RSA-AES128-SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"},
      {"ECDHE-RSA-AES256-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"},
      {"AES256-SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA256"},
      {"DHE-RSA-AES256-GCM-SHA384", "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"},
  };
  for (const Suite& suite : suites) {
    for (bool etm : {true, false}) {
      CAPTURE(std::string(suite.openssl_name));
      CAPTURE(etm);
      Options options;
      options.version = TLS1_2_VERSION;
      options.ciphers = suite.openssl_name;
      options.encrypt_then_mac = etm;
      options.alpn = {"http/1.1"};
      Endpoints endpoints(options);
      Connection connection(endpoints);
      REQUIRE(connection.handshake());
      exchange(connection);
      std::string keylog = endpoints.take_keylog();
      for (Split split : kSplits) {
        CAPTURE(static_cast<int>(split));
        Decoded decoded = decode(connection.wire(), keylog, split);
        check_decrypted(decoded, connection);
        CHECK(decoded.info.version == "TLSv1.2");
        CHECK(decoded.info.cipher == suite.iana_name);
        CHECK(decoded.info.alpn == "http/1.1");
        CHECK(decoded.info.sni == "api.doppel.test");
      }
    }
  }
}

TEST_CASE("TLS 1.3 KeyUpdate: both directions switch to the next secret") {
  Options options;
  Endpoints endpoints(options);
  Connection connection(endpoints);
  REQUIRE(connection.handshake());
  connection.write(0, "before the update");
  REQUIRE(SSL_key_update(connection.ssl(0), SSL_KEY_UPDATE_REQUESTED) == 1);
  connection.write(0, "after the client's update");
  connection.write(1, "after the server's update");
  REQUIRE(SSL_key_update(connection.ssl(1), SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
  connection.write(1, body(100000, 'k'));
  connection.write(0, "done");
  std::string keylog = endpoints.take_keylog();
  for (Split split : kSplits) check_decrypted(decode(connection.wire(), keylog, split), connection);
}

TEST_CASE("TLS 1.3 resumption (PSK) works through the logged secrets") {
  Options options;
  Endpoints endpoints(options);
  Connection first(endpoints);
  REQUIRE(first.handshake());
  first.write(0, "first");
  first.write(1, "first response");
  SSL_SESSION* session = first.session();
  REQUIRE(session);
  endpoints.take_keylog();
  Connection second(endpoints, session);
  REQUIRE(second.handshake());
  CHECK(SSL_session_reused(second.ssl(0)) == 1);
  second.write(0, "second");
  second.write(1, "second response");
  Decoded decoded = decode(second.wire(), endpoints.take_keylog());
  check_decrypted(decoded, second);
  CHECK(decoded.info.resumed);
  SSL_SESSION_free(session);
}

TEST_CASE("TLS 1.2 resumption without the resumed connection's key log line") {
  for (bool tickets : {true, false}) {
    CAPTURE(tickets);
    Options options;
    options.version = TLS1_2_VERSION;
    options.ciphers = "ECDHE-RSA-AES128-GCM-SHA256";
    options.tickets = tickets;
    Endpoints endpoints(options);
    Connection first(endpoints);
    REQUIRE(first.handshake());
    first.write(0, "first");
    first.write(1, "first response");
    SSL_SESSION* session = first.session();
    REQUIRE(session);
    TlsKeyLog keys;
    keys.add(endpoints.take_keylog());
    check_decrypted(decode(first.wire(), keys), first);

    Connection second(endpoints, session);
    REQUIRE(second.handshake());
    REQUIRE(SSL_session_reused(second.ssl(0)) == 1);
    second.write(0, "second");
    second.write(1, "second response");
    endpoints.take_keylog();  // its CLIENT_RANDOM line is not given to the decoder
    Decoded decoded = decode(second.wire(), keys);
    check_decrypted(decoded, second);
    CHECK(decoded.info.resumed);

    TlsKeyLog empty;  // without the first connection, nothing to resume from
    CHECK(decode(second.wire(), empty).outcome.failure == TlsFailure::no_key);
    SSL_SESSION_free(session);
  }
}

TEST_CASE("TLS 1.3 HelloRetryRequest: the second hellos count") {
  Options options;
  options.server_groups = "P-256";
  Endpoints endpoints(options);
  Connection connection(endpoints);
  REQUIRE(connection.handshake());
  exchange(connection);
  std::string keylog = endpoints.take_keylog();
  for (Split split : kSplits) check_decrypted(decode(connection.wire(), keylog, split), connection);
}

TEST_CASE("Keys arriving after the data: held bytes replayed in capture order") {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(version);
    Options options;
    options.version = version;
    Endpoints endpoints(options);
    Connection connection(endpoints);
    REQUIRE(connection.handshake());
    for (int i = 0; i < 5; ++i) {
      connection.write(0, "request " + std::to_string(i));
      connection.write(1, "response " + std::to_string(i));
    }
    std::string keylog = endpoints.take_keylog();
    Decoded reference = decode(connection.wire(), keylog);
    check_decrypted(reference, connection);

    TlsKeyLog keys;
    Outcome outcome;
    CountingMemory memory;
    {
      TlsDecoder decoder(keys, outcome, &memory, {});
      std::int64_t ts = 0;
      feed(decoder, connection.wire(), Split::as_written, ts);
      CHECK_FALSE(decoder.keyed());
      CHECK(outcome.plaintext[0].empty());
      CHECK(memory.held > 0);
      decoder.advance(ts + 1);  // nothing new in the log
      CHECK(outcome.failure == TlsFailure::none);
      keys.add(keylog);
      decoder.advance(ts + 2);
      CHECK(decoder.keyed());
      CHECK(outcome.plaintext[0] == connection.sent(0));
      CHECK(outcome.plaintext[1] == connection.sent(1));
      CHECK(outcome.order == reference.outcome.order);
      CHECK(memory.held == 0);
      decoder.close();
      CHECK(outcome.failure == TlsFailure::none);
    }
    CHECK(memory.held == 0);
  }
}

TEST_CASE("Keys that never arrive: no_key after key_wait, or at close") {
  Options options;
  Endpoints endpoints(options);
  Connection connection(endpoints);
  REQUIRE(connection.handshake());
  exchange(connection);
  TlsKeyLog keys;
  Outcome outcome;
  CountingMemory memory;
  TlsLimits limits;
  limits.max_held_bytes = 4 << 20;
  limits.key_wait_ns = 5'000'000'000;
  TlsDecoder decoder(keys, outcome, &memory, limits);
  std::int64_t ts = 0;
  feed(decoder, connection.wire(), Split::as_written, ts);
  decoder.advance(ts + 1'000'000'000);
  CHECK(outcome.failure == TlsFailure::none);
  decoder.advance(ts + 6'000'000'000);
  CHECK(outcome.failure == TlsFailure::no_key);
  CHECK(memory.held == 0);
  decoder.close();
  CHECK(outcome.failures == 1);

  TlsKeyLog empty;
  Decoded closed = decode(connection.wire(), empty, Split::as_written, limits);
  CHECK(closed.outcome.failure == TlsFailure::no_key);
  CHECK(closed.memory_left == 0);

  // Too much held while waiting.
  TlsLimits small;
  small.max_held_bytes = 64 << 10;
  TlsKeyLog none;
  Decoded too_large = decode(connection.wire(), none, Split::as_written, small);
  CHECK(too_large.outcome.failure == TlsFailure::too_large);
  CHECK(too_large.memory_left == 0);
}

TEST_CASE("A wrong key authenticates nothing: bad_key, no plaintext") {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    for (const char* cipher : {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA"}) {
      CAPTURE(version);
      CAPTURE(cipher);
      Options options;
      options.version = version;
      options.ciphers = cipher;
      Endpoints endpoints(options);
      Connection connection(endpoints);
      REQUIRE(connection.handshake());
      exchange(connection);
      std::string keylog = endpoints.take_keylog();
      std::string wrong;
      std::size_t start = 0;
      while (start < keylog.size()) {  // the last hex digit of every secret changed
        std::size_t end = keylog.find('\n', start);
        std::string line = keylog.substr(start, end - start);
        line.back() = line.back() == '0' ? '1' : '0';
        wrong += line + "\n";
        start = end + 1;
      }
      Decoded decoded = decode(connection.wire(), wrong);
      CHECK(decoded.outcome.failure == TlsFailure::bad_key);
      CHECK(decoded.outcome.plaintext[0].empty());
      CHECK(decoded.outcome.plaintext[1].empty());
      CHECK(decoded.memory_left == 0);
    }
  }
}

TEST_CASE("Lost, cut and garbage bytes") {
  Options options;
  Endpoints endpoints(options);
  Connection connection(endpoints);
  REQUIRE(connection.handshake());
  connection.write(0, "GET / HTTP/1.1\r\n\r\n");
  connection.write(1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  TlsKeyLog keys;
  keys.add(endpoints.take_keylog());

  SUBCASE("hole") {
    Outcome outcome;
    TlsDecoder decoder(keys, outcome, nullptr, {});
    decoder.data(0, connection.wire()[0].bytes, 1);
    decoder.hole(1);
    CHECK(outcome.failure == TlsFailure::gap);
    decoder.data(1, connection.wire()[1].bytes, 2);
    CHECK(outcome.failures == 1);
    CHECK(decoder.failed());
  }
  SUBCASE("truncated record at close") {
    auto wire = connection.wire();
    wire.back().bytes.pop_back();
    Decoded decoded = decode(wire, keys);
    CHECK(decoded.outcome.failure == TlsFailure::gap);
    CHECK(decoded.outcome.plaintext[0] == connection.sent(0));
    CHECK(decoded.memory_left == 0);
  }
  SUBCASE("garbage") {
    std::vector<Chunk> wire = {{0, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"}};
    CHECK(decode(wire, keys).outcome.failure == TlsFailure::malformed);
    auto damaged = connection.wire();
    damaged[1].bytes[0] = 0x42;  // the ServerHello's record type
    CHECK(decode(damaged, keys).outcome.failure == TlsFailure::malformed);
    auto oversized = connection.wire();
    oversized[1].bytes[3] = static_cast<char>(0x49);  // 18688 > 2^14 + 2048
    CHECK(decode(oversized, keys).outcome.failure == TlsFailure::malformed);
  }
  SUBCASE("a flipped ciphertext byte") {
    auto damaged = connection.wire();
    damaged.back().bytes[damaged.back().bytes.size() - 3] ^= 1;
    Decoded decoded = decode(damaged, keys);
    CHECK(decoded.outcome.failure == TlsFailure::bad_key);
    CHECK(decoded.outcome.plaintext[1].empty());
  }
}

TEST_CASE("TLS 1.0 is unsupported_version") {
  Options options;
  options.version = TLS1_VERSION;
  options.ciphers = "AES128-SHA@SECLEVEL=0";
  options.security_level = 0;
  Endpoints endpoints(options);
  Connection connection(endpoints);
  connection.handshake();
  REQUIRE(connection.wire().size() >= 2);
  Decoded decoded = decode(connection.wire(), endpoints.take_keylog());
  CHECK(decoded.outcome.failure == TlsFailure::unsupported_version);
  CHECK(decoded.info.version == "TLSv1");
}

TEST_CASE("An unsupported cipher is named") {
  Options options;
  options.version = TLS1_2_VERSION;
  options.ciphers = "AES128-CCM";
  Endpoints endpoints(options);
  Connection connection(endpoints);
  REQUIRE(connection.handshake());
  connection.write(0, "hello");
  Decoded decoded = decode(connection.wire(), endpoints.take_keylog());
  CHECK(decoded.outcome.failure == TlsFailure::unsupported_cipher);
  CHECK(decoded.info.cipher == "TLS_RSA_WITH_AES_128_CCM");
  CHECK(decoded.outcome.plaintext[0].empty());
}

TEST_CASE("TLS 1.2 renegotiation ends the decoding after the plaintext before it") {
  Options options;
  options.version = TLS1_2_VERSION;
  Endpoints endpoints(options);
  Connection connection(endpoints);
  REQUIRE(connection.handshake());
  connection.write(0, "before");
  connection.write(1, "before too");
  REQUIRE(SSL_renegotiate(connection.ssl(1)) == 1);
  SSL_do_handshake(connection.ssl(1));
  connection.pump();
  connection.write(0, "after");
  Decoded decoded = decode(connection.wire(), endpoints.take_keylog());
  CHECK(decoded.outcome.failure == TlsFailure::renegotiation);
  CHECK(decoded.outcome.plaintext[0] == "before");
  CHECK(decoded.outcome.plaintext[1] == "before too");
  CHECK(decoded.memory_left == 0);
}

TEST_CASE("detect_client_hello") {
  Options options;
  Endpoints endpoints(options);
  Connection connection(endpoints);
  REQUIRE(connection.handshake());
  const std::string& hello = connection.wire()[0].bytes;
  CHECK(TlsDecoder::detect_client_hello(hello) == TlsDecoder::Detection::yes);
  CHECK(TlsDecoder::detect_client_hello(hello.substr(0, 11)) == TlsDecoder::Detection::yes);
  for (std::size_t n = 0; n < 11; ++n)
    CHECK(TlsDecoder::detect_client_hello(hello.substr(0, n)) == TlsDecoder::Detection::maybe);
  CHECK(TlsDecoder::detect_client_hello("GET / HTTP/1.1\r\n") == TlsDecoder::Detection::no);
  CHECK(TlsDecoder::detect_client_hello("PRI * HTTP/2.0\r\n") == TlsDecoder::Detection::no);
  CHECK(TlsDecoder::detect_client_hello(std::string_view("\x16\x03\x01\x00\x05\x02\x00\x00\x01\x03\x03", 11)) ==
        TlsDecoder::Detection::no);
  CHECK(tls_failure_name(TlsFailure::unsupported_cipher) == "unsupported_cipher");
}
