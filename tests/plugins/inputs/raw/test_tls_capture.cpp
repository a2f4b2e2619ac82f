// HTTPS capture (issue 19): real TLS conversations (OpenSSL client and server in process,
// tls_conversation.hpp) carried in TCP segments through CaptureSession. A connection opening
// with a ClientHello is decrypted with the key log's secrets and its HTTP paired like
// cleartext; without its secrets, from its middle, or past a loss, it is counted and nothing of
// it is parsed as HTTP.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "capture_session.hpp"
#include "pcap_builder.hpp"
#include "tls_conversation.hpp"
#include "tls_key_source.hpp"

using namespace doppel;
using namespace doppel::plugins::raw;
namespace pb = pcap_builder;
namespace tc = tls_conversation;

namespace {

const pb::Address kClient = pb::Address::v4("10.3.0.1");
const pb::Address kServer = pb::Address::v4("10.3.0.2");
constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;
constexpr std::int64_t kMs = 1'000'000;
constexpr std::size_t kMss = 1448;

struct Capture {
  std::vector<std::shared_ptr<Message>> messages;
  std::shared_ptr<TlsKeySource> keys;
  std::unique_ptr<CaptureSession> session;
  std::int64_t t = kT0;

  // `with_keys`: a key source (empty until add_keys), as tls_keylog or a pcapng's secrets give.
  // `keylog_path`: a key log file followed as tls_keylog follows it.
  explicit Capture(bool with_keys = true, std::int64_t key_wait_ns = 10'000 * kMs, const std::string& keylog_path = "") {
    CaptureConfig config;
    config.track_response = true;
    config.server_ports = {443};
    if (with_keys) config.tls_keys = keys = std::make_shared<TlsKeySource>(keylog_path);
    config.tls_limits.key_wait_ns = key_wait_ns;
    session = std::make_unique<CaptureSession>(
        config, CaptureSession::EmitShared([this](std::shared_ptr<Message>&& m) { messages.push_back(std::move(m)); }));
  }
  void add_keys(const std::string& keylog) { keys->add_embedded(keylog); }
  void add(const pb::Segment& s) {
    std::string ip = pb::ip_packet(s);
    session->add_frame(pb::kRaw, reinterpret_cast<const std::uint8_t*>(ip.data()), ip.size(), ip.size(), t);
    t += kMs;
  }
  // The conversation's wire bytes in MSS-sized segments, from chunk `from` on; the segments
  // numbered in `lose` (counted from the first one sent) are left out.
  void add_wire(pb::Conversation& tcp, const tc::Connection& tls, std::size_t from = 0,
                const std::vector<std::size_t>& lose = {}) {
    std::size_t number = 0;
    for (std::size_t i = from; i < tls.wire().size(); ++i) {
      std::string_view bytes = tls.wire()[i].bytes;
      bool client = tls.wire()[i].direction == 0;
      for (std::size_t at = 0; at < bytes.size(); at += kMss) {
        pb::Segment s = client ? tcp.client(bytes.substr(at, kMss)) : tcp.server(bytes.substr(at, kMss));
        if (std::find(lose.begin(), lose.end(), number++) == lose.end()) add(s);
      }
    }
  }
  // The conversation's wire bytes as MSS-sized segments, not yet captured.
  static std::vector<pb::Segment> segments(pb::Conversation& tcp, const tc::Connection& tls) {
    std::vector<pb::Segment> out;
    for (const auto& chunk : tls.wire())
      for (std::size_t at = 0; at < chunk.bytes.size(); at += kMss) {
        std::string_view part = std::string_view(chunk.bytes).substr(at, kMss);
        out.push_back(chunk.direction == 0 ? tcp.client(part) : tcp.server(part));
      }
    return out;
  }
  void finish() { session->finish(t); }
  CaptureStats stats() const { return session->stats(); }
  std::uint64_t failed(TlsFailure f) const { return stats().tls.failed[static_cast<std::size_t>(f)]; }
  std::uint64_t drops() const {
    std::uint64_t n = 0;
    for (auto d : stats().dropped) n += d;
    return n;
  }
};

std::string body(std::size_t size, char seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(seed + i * 7 % 61);
  return out;
}

std::string request(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: api.doppel.test\r\nUser-Agent: t/1\r\n\r\n";
}
std::string response(const std::string& content) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
         std::to_string(content.size()) + "\r\n\r\n" + content;
}

// Three keep-alive exchanges, the second with a 300 kB answer and the third an upload; returns
// the messages as each side wrote them, in order.
std::vector<std::string> converse(tc::Connection& tls) {
  std::vector<std::string> expected;
  const std::string upload = body(70'000, 'u');
  const std::string post = "POST /upload HTTP/1.1\r\nHost: api.doppel.test\r\nContent-Length: " +
                           std::to_string(upload.size()) + "\r\n\r\n" + upload;
  for (const std::string& req : {request("/small"), request("/large"), post}) {
    std::string resp = response(req == post ? "stored" : req.find("large") != std::string::npos
                                                            ? body(300'000, 'L')
                                                            : std::string("small body"));
    tls.write(0, req);
    tls.write(1, resp);
    expected.push_back(req);
    expected.push_back(resp);
  }
  return expected;
}

void check_exchanges(const Capture& capture, const std::vector<std::string>& expected, const std::string& version,
                     const std::string& cipher) {
  REQUIRE(capture.messages.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const Message& m = *capture.messages[i];
    CHECK(m.kind == (i % 2 == 0 ? Kind::request : Kind::response));
    CHECK(m.payload == expected[i]);
    if (i % 2 == 1) CHECK(m.id == capture.messages[i - 1]->id);
    REQUIRE(m.meta.tls);
    CHECK(m.meta.tls->version == version);
    CHECK(m.meta.tls->cipher == cipher);
    CHECK(m.meta.tls->server_name == "api.doppel.test");
    CHECK(m.meta.source.port == (i % 2 == 0 ? 40001 : 443));
  }
}

}  // namespace

TEST_CASE("TLS connections are decrypted with the key log and paired like cleartext") {
  struct Case {
    int version;
    std::string ciphers, suites, name, shown;
  };
  for (const Case& c : {Case{TLS1_3_VERSION, "", "TLS_AES_128_GCM_SHA256", "TLSv1.3", "TLS_AES_128_GCM_SHA256"},
                        Case{TLS1_3_VERSION, "", "TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3",
                             "TLS_CHACHA20_POLY1305_SHA256"},
                        Case{TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", "", "TLSv1.2",
                             "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
                        Case{TLS1_2_VERSION, "ECDHE-RSA-AES128-SHA", "", "TLSv1.2",
                             "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}}) {
    CAPTURE(c.shown);
    tc::Options options;
    options.version = c.version;
    options.ciphers = c.ciphers;
    options.ciphersuites = c.suites;
    options.alpn = {"http/1.1"};
    tc::Endpoints endpoints(options);
    tc::Connection tls(endpoints);
    REQUIRE(tls.handshake());
    auto expected = converse(tls);

    Capture capture;
    capture.add_keys(endpoints.take_keylog());
    pb::Conversation tcp(kClient, 40001, kServer, 443);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls);
    capture.add(tcp.client_fin());
    capture.add(tcp.server_fin());
    capture.finish();
    check_exchanges(capture, expected, c.name, c.shown);
    CHECK(capture.messages[0]->meta.tls->alpn == "http/1.1");
    auto stats = capture.stats();
    CHECK(stats.tls.connections == 1);
    CHECK(stats.tls.decrypted == 1);
    CHECK(capture.drops() == 0);
    CHECK(stats.responses_missing == 0);
  }
}

TEST_CASE("a key that reaches the log after the records is waited for, within tls_key_wait") {
  tc::Options options;
  options.ciphersuites = "TLS_AES_128_GCM_SHA256";
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  REQUIRE(tls.handshake());
  auto expected = converse(tls);
  std::string keylog = endpoints.take_keylog();

  SUBCASE("arrives: the held records are decrypted in their order, the end of the connection after them") {
    Capture capture;
    pb::Conversation tcp(kClient, 40001, kServer, 443);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls);
    CHECK(capture.messages.empty());
    capture.add_keys(keylog);
    capture.session->advance(capture.t);
    check_exchanges(capture, expected, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    capture.add(tcp.client_fin());
    capture.add(tcp.server_fin());
    capture.finish();
    CHECK(capture.messages.size() == expected.size());
    CHECK(capture.drops() == 0);
  }
  SUBCASE("the connection closes first: its key is looked for once more, then it is counted no_key") {
    Capture capture;
    pb::Conversation tcp(kClient, 40001, kServer, 443);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls);
    capture.add(tcp.client_fin());
    capture.add(tcp.server_fin());
    capture.finish();
    CHECK(capture.failed(TlsFailure::no_key) == 1);
    CHECK(capture.messages.empty());
    CHECK(capture.drops() == 0);
  }
  SUBCASE("never arrives: counted no_key once the wait is over, nothing emitted or dropped as HTTP") {
    Capture capture(true, 50 * kMs);
    pb::Conversation tcp(kClient, 40001, kServer, 443);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls);
    capture.session->advance(capture.t + 100 * kMs);
    CHECK(capture.failed(TlsFailure::no_key) == 1);
    capture.add_keys(keylog);  // too late
    capture.add(tcp.client_fin());
    capture.add(tcp.server_fin());
    capture.finish();
    CHECK(capture.messages.empty());
    CHECK(capture.drops() == 0);
    CHECK(capture.stats().tls.decrypted == 0);
  }
}

TEST_CASE("TLS that cannot be decrypted is counted and never parsed as HTTP") {
  tc::Options options;
  options.version = TLS1_2_VERSION;
  options.ciphers = "ECDHE-RSA-AES128-GCM-SHA256";
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  REQUIRE(tls.handshake());
  auto expected = converse(tls);
  std::string keylog = endpoints.take_keylog();
  pb::Conversation tcp(kClient, 40001, kServer, 443);

  SUBCASE("no key log at all") {
    Capture capture(false);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls);
    capture.finish();
    CHECK(capture.stats().tls.connections == 1);
    CHECK(capture.failed(TlsFailure::no_key) == 1);
    CHECK(capture.messages.empty());
    CHECK(capture.drops() == 0);
  }
  SUBCASE("a wrong secret: not one byte emitted") {
    Capture capture;
    std::string wrong = keylog;
    char& last = wrong[wrong.find_last_not_of("\r\n")];
    last = last == '0' ? '1' : '0';
    capture.add_keys(wrong);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls);
    capture.finish();
    CHECK(capture.failed(TlsFailure::bad_key) == 1);
    CHECK(capture.messages.empty());
    CHECK(capture.drops() == 0);
  }
  SUBCASE("captured from its middle (no ClientHello): skipped whole") {
    Capture capture;
    capture.add_keys(keylog);
    std::size_t first_data = 0;
    while (first_data < tls.wire().size() && tls.wire()[first_data].bytes[0] != 23) ++first_data;
    REQUIRE(first_data < tls.wire().size());
    capture.add_wire(tcp, tls, first_data + 1);
    capture.finish();
    CHECK(capture.stats().tls.midstream == 1);
    CHECK(capture.messages.empty());
    CHECK(capture.drops() == 0);
  }
  SUBCASE("a segment lost in the large response: what came before stands, the rest is counted") {
    Capture capture;
    capture.add_keys(keylog);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls, 0, {60});
    capture.finish();
    CHECK(capture.failed(TlsFailure::gap) == 1);
    // The first exchange and the second request were whole before the loss.
    REQUIRE(capture.messages.size() == 3);
    CHECK(capture.messages[0]->payload == expected[0]);
    CHECK(capture.messages[1]->payload == expected[1]);
    CHECK(capture.messages[2]->payload == expected[2]);
    // The large response, begun and cut: dropped as a loss, as in cleartext.
    CHECK(capture.stats().dropped[static_cast<std::size_t>(DropReason::gap)] == 1);
    CHECK(capture.drops() == 1);
  }
}

TEST_CASE("a connection whose SYN was not seen still decrypts from its ClientHello") {
  tc::Options options;
  options.ciphersuites = "TLS_AES_128_GCM_SHA256";
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  REQUIRE(tls.handshake());
  auto expected = converse(tls);
  Capture capture;
  capture.add_keys(endpoints.take_keylog());
  pb::Conversation tcp(kClient, 40001, kServer, 443);
  tcp.handshake();  // not captured
  capture.add_wire(tcp, tls);
  capture.finish();
  check_exchanges(capture, expected, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
}

TEST_CASE("a pcapng's Decryption Secrets Block is a key log: one file is enough offline") {
  tc::Options options;
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  REQUIRE(tls.handshake());
  converse(tls);
  std::string keylog = endpoints.take_keylog();

  pb::Capture file(pb::kRaw);
  pb::Conversation tcp(kClient, 40001, kServer, 443);
  std::int64_t t = kT0;
  for (auto& s : tcp.handshake()) file.add(s, t += kMs);
  for (const auto& chunk : tls.wire())
    for (std::size_t at = 0; at < chunk.bytes.size(); at += kMss) {
      std::string_view part = std::string_view(chunk.bytes).substr(at, kMss);
      file.add(chunk.direction == 0 ? tcp.client(part) : tcp.server(part), t += kMs);
    }
  const std::string dir = "/tmp/doppel-test-tls-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  file.write_pcapng(dir + "/with-secrets.pcapng", keylog);
  file.write_pcapng(dir + "/without.pcapng");
  file.write_pcap(dir + "/classic.pcap");
  CHECK(pcapng_tls_secrets(dir + "/with-secrets.pcapng") == keylog);
  CHECK(pcapng_tls_secrets(dir + "/without.pcapng").empty());
  CHECK(pcapng_tls_secrets(dir + "/classic.pcap").empty());
  CHECK(pcapng_tls_secrets(dir + "/missing.pcapng").empty());
  // A block length that cannot be: what was found before it stands, nothing is read past it.
  {
    std::ifstream in(dir + "/with-secrets.pcapng", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes[28 + 4] = 0x7f;  // the interface block's length
    std::ofstream(dir + "/damaged.pcapng", std::ios::binary) << bytes;
    CHECK(pcapng_tls_secrets(dir + "/damaged.pcapng").empty());
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a ClientHello whose first bytes come in tiny segments is still recognised") {
  tc::Options options;
  options.ciphersuites = "TLS_AES_128_GCM_SHA256";
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  REQUIRE(tls.handshake());
  auto expected = converse(tls);
  Capture capture;
  capture.add_keys(endpoints.take_keylog());
  pb::Conversation tcp(kClient, 40001, kServer, 443);
  for (auto& s : tcp.handshake()) capture.add(s);
  std::string_view hello = tls.wire()[0].bytes;
  REQUIRE(tls.wire()[0].direction == 0);
  for (std::size_t size : {1, 1, 2, 3, 4}) {
    capture.add(tcp.client(hello.substr(0, size)));
    hello.remove_prefix(size);
  }
  capture.add(tcp.client(hello));
  capture.add_wire(tcp, tls, 1);
  capture.finish();
  check_exchanges(capture, expected, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
}

TEST_CASE("TLS 1.3 application secrets logged after the handshake's: the records wait for them too") {
  tc::Options options;
  options.ciphersuites = "TLS_AES_128_GCM_SHA256";
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  REQUIRE(tls.handshake());
  auto expected = converse(tls);
  // What a live key log holds when the first application data passes: the handshake's lines.
  std::string handshake_lines, application_lines;
  std::istringstream lines(endpoints.take_keylog());
  for (std::string line; std::getline(lines, line);)
    (line.find("HANDSHAKE") != std::string::npos ? handshake_lines : application_lines) += line + "\n";
  REQUIRE(!handshake_lines.empty());
  REQUIRE(!application_lines.empty());

  for (bool closes_first : {false, true}) {
    CAPTURE(closes_first);
    const std::string path = "/tmp/doppel-test-keylog-" + std::to_string(::getpid());
    std::ofstream(path) << handshake_lines;
    Capture capture(true, 10'000 * kMs, path);
    pb::Conversation tcp(kClient, 40001, kServer, 443);
    for (auto& s : tcp.handshake()) capture.add(s);
    capture.add_wire(tcp, tls);
    CHECK(capture.messages.empty());
    std::ofstream(path, std::ios::app) << application_lines;
    if (!closes_first) {
      // The log is looked at as time passes (at most once a millisecond).
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      capture.session->advance(capture.t);
      CHECK(capture.messages.size() == expected.size());
    }
    // Else the connection's end: its key is looked for once more, in the log as it is then.
    capture.add(tcp.client_fin());
    capture.add(tcp.server_fin());
    capture.finish();
    std::filesystem::remove(path);
    check_exchanges(capture, expected, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
    CHECK(capture.drops() == 0);
    CHECK(capture.stats().tls.decrypted == 1);
  }
}

TEST_CASE("tls_keylog names a readable key log, or validation says what it is instead") {
  const std::string dir = "/tmp/doppel-test-keylog-file-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto refused = [](const std::string& path) -> std::string {
    try {
      TlsKeySource source(path);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  CHECK(refused(dir).find("is a directory") != std::string::npos);
  CHECK(refused(dir + "/missing.log").find("No such file") != std::string::npos);
  std::ofstream(dir + "/capture.pcap", std::ios::binary) << std::string("\xd4\xc3\xb2\xa1\x02\x00\x04\x00", 8);
  CHECK(refused(dir + "/capture.pcap").find("is not a TLS key log") != std::string::npos);
  std::ofstream(dir + "/key.pem") << "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n";
  CHECK(refused(dir + "/key.pem").find("is not a TLS key log") != std::string::npos);
  // Empty (a live capture follows it as it is written), or holding secrets: taken.
  std::ofstream(dir + "/empty.log");
  CHECK(refused(dir + "/empty.log").empty());
  std::ofstream(dir + "/keys.log") << "# comment\nCLIENT_RANDOM " << std::string(64, 'a') << ' ' << std::string(96, 'b')
                                   << "\n";
  CHECK(refused(dir + "/keys.log").empty());
  TlsKeySource source(dir + "/keys.log");
  CHECK(source.keys().size() == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the two directions captured out of order: the ciphertext is put back in order by its acknowledgements") {
  tc::Options options;
  options.version = TLS1_2_VERSION;
  options.ciphers = "ECDHE-RSA-AES128-GCM-SHA256";
  tc::Endpoints endpoints(options);
  tc::Connection tls(endpoints);
  REQUIRE(tls.handshake());
  auto expected = converse(tls);
  std::string keylog = endpoints.take_keylog();
  const std::string suite = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256";

  pb::Conversation tcp(kClient, 40001, kServer, 443);
  auto handshake = tcp.handshake();
  auto wire = Capture::segments(tcp, tls);
  auto first_of = [&](std::uint16_t sport, std::size_t from) {
    for (std::size_t i = from; i < wire.size(); ++i)
      if (wire[i].sport == sport) return i;
    return wire.size();
  };

  SUBCASE("the ServerHello before the ClientHello") {
    REQUIRE(wire[0].sport == 40001);
    REQUIRE(wire[1].sport == 443);
    std::swap(wire[0], wire[1]);
  }
  SUBCASE("every response's first segment before its request's last") {
    // After the handshake, each server segment that starts a run moves ahead of the client
    // segment just before it: the answer is captured before the question is whole.
    std::size_t first_request = 0;
    for (std::size_t i = 0; i < wire.size(); ++i)
      if (wire[i].sport == 40001 && wire[i].payload[0] == 23) {
        first_request = i;
        break;
      }
    REQUIRE(first_request > 0);
    for (std::size_t i = first_request + 1; i < wire.size(); ++i)
      if (wire[i].sport == 443 && wire[i - 1].sport == 40001) std::swap(wire[i - 1], wire[i]);
  }
  SUBCASE("a response's segment ahead of its whole request") {
    std::size_t request = 0;
    for (std::size_t i = 0; i < wire.size(); ++i)
      if (wire[i].sport == 40001 && wire[i].payload[0] == 23) {
        request = i;
        break;
      }
    std::size_t response = first_of(443, request);
    REQUIRE(response < wire.size());
    auto moved = wire[response];
    wire.erase(wire.begin() + static_cast<std::ptrdiff_t>(response));
    wire.insert(wire.begin() + static_cast<std::ptrdiff_t>(request), moved);
  }

  Capture capture;
  capture.add_keys(keylog);
  for (auto& s : handshake) capture.add(s);
  for (auto& s : wire) capture.add(s);
  capture.add(tcp.client_fin());
  capture.add(tcp.server_fin());
  capture.finish();
  check_exchanges(capture, expected, "TLSv1.2", suite);
  CHECK(capture.drops() == 0);
  CHECK(capture.stats().responses_missing == 0);
}
