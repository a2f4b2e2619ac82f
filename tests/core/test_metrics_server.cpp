// The /metrics address as pipeline files write it, the HTTP server behind it (answers,
// refusals, deadlines, the connection cap), and how errors quote what users wrote.
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "core_test_support.hpp"
#include "http_test_client.hpp"
#include "metrics_server.hpp"

using namespace doppel;
using namespace doppel::core;
using doppel::core::testing::build;
using doppel::testing::Client;

namespace {

std::string address_error(std::string_view text) {
  try {
    parse_listen_address(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A MetricsServer on 127.0.0.1 with its own I/O thread.
struct ServerFixture {
  explicit ServerFixture(MetricsServer::Limits limits = {}) {
    ListenAddress address{"127.0.0.1", 0, "127.0.0.1:0"};  // any free port
    server = std::make_unique<MetricsServer>(io, address, [] { return std::string("doppel_up 1\n"); }, limits);
    port = server->local_endpoint().port();
    thread = std::thread([this] { io.run(); });
  }
  ~ServerFixture() {
    work.reset();
    io.stop();
    thread.join();
    server.reset();
  }
  boost::asio::io_context io;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work{io.get_executor()};
  std::unique_ptr<MetricsServer> server;
  std::uint16_t port = 0;
  std::thread thread;
};

template <class Done>
bool eventually(Done done, std::chrono::milliseconds within = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace

TEST_CASE("metrics addresses: HOST:PORT, [IPv6]:PORT, :PORT for every interface, and names resolved at load") {
  auto v4 = parse_listen_address("127.0.0.1:9464");
  CHECK(v4.host == "127.0.0.1");
  CHECK(v4.port == 9464);
  CHECK(v4.text == "127.0.0.1:9464");
  auto v6 = parse_listen_address("[::1]:1");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 1);
  auto any = parse_listen_address(":65535");
  CHECK(any.host.empty());
  CHECK(any.port == 65535);
  CHECK(parse_listen_address("[::]:9464").host == "::");
  CHECK(parse_listen_address("0.0.0.0:9464").host == "0.0.0.0");
  auto local = parse_listen_address("localhost:9464");
  CHECK((local.host == "127.0.0.1" || local.host == "::1"));  // a literal: the run binds what validate resolved
  CHECK(local.port == 9464);
  CHECK(local.text == "localhost:9464");
}

TEST_CASE("metrics addresses that cannot be served are refused, saying why and what is accepted") {
  const std::string forms = "; expected HOST:PORT, [IPv6]:PORT or :PORT (every interface), e.g. \"127.0.0.1:9464\"";
  CHECK(address_error("host:http") ==
        "invalid address \"host:http\": the port must be a number from 1 to 65535, not \"http\"");
  CHECK(contains(address_error("127.0.0.1:70000"), "from 1 to 65535, not \"70000\""));
  CHECK(contains(address_error("127.0.0.1:0"), "from 1 to 65535, not \"0\""));
  CHECK(contains(address_error("127.0.0.1:-1"), "not \"-1\""));
  CHECK(contains(address_error("127.0.0.1:+80"), "not \"+80\""));
  CHECK(contains(address_error("127.0.0.1:"), "not \"\""));
  CHECK(contains(address_error("127.0.0.1:0009464"), "not \"0009464\""));
  CHECK(contains(address_error("9464"),
                 "no host; write \"127.0.0.1:9464\" for this machine only or \":9464\" for every interface"));
  CHECK(address_error("localhost") == "invalid address \"localhost\": no port" + forms);
  CHECK(contains(address_error("::1:9464"), "an IPv6 address goes in brackets, as in \"[::1]:9464\""));
  CHECK(contains(address_error("[::1:9464"), "no \"]\" after the IPv6 address"));
  CHECK(contains(address_error("[::1]9464"), "no \":PORT\" after \"]\""));
  CHECK(contains(address_error("[127.0.0.1]:80"), "\"127.0.0.1\" is not an IPv6 address"));
  CHECK(contains(address_error("my host:80"), "\"my host\" is neither an IPv4 address nor a host name"));
  CHECK(contains(address_error("a..b:80"), "\"a..b\" is neither"));
  // What a user wrote is quoted, never echoed whole.
  std::string huge(1 << 20, 'x');
  CHECK(address_error(huge + ":80").size() < 200);
}

TEST_CASE("a bad metrics address is a validation error at the `metrics` key") {
  auto b = build("[pipeline]\nname = \"m\"\nmetrics = \"host:http\"\n[inputs.src]\nplugin = \"canned\"\n"
                 "[outputs.out]\nplugin = \"collect\"\nfrom = [\"src\"]\npath = \"/dev/null\"\n");
  REQUIRE(b.errors.size() == 1);
  CHECK(b.errors[0].position().to_string() == "p.toml:3:1");
  CHECK(std::string(b.errors[0].what()) ==
        "option \"metrics\": invalid address \"host:http\": the port must be a number from 1 to 65535, not \"http\"");

  auto ok = build("[pipeline]\nmetrics = \":9464\"\n[inputs.src]\nplugin = \"canned\"\n"
                  "[outputs.out]\nplugin = \"collect\"\nfrom = [\"src\"]\npath = \"/dev/null\"\n");
  REQUIRE_MESSAGE(ok.graph, ok.error_text());
  REQUIRE(ok.graph->spec.settings.metrics);
  CHECK(ok.graph->spec.settings.metrics->host.empty());
  CHECK(ok.graph->spec.settings.metrics->port == 9464);
}

TEST_CASE("errors quote at most a prefix of what a user wrote, with control characters escaped") {
  CHECK(quote_for_message("abc") == "\"abc\"");
  CHECK(quote_for_message("") == "\"\"");
  CHECK(quote_for_message("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quote_for_message("GET /\x01\x7f\n\r\t") == "\"GET /\\x01\\x7f\\n\\r\\t\"");
  CHECK(quote_for_message("caf\xc3\xa9") == "\"caf\xc3\xa9\"");          // UTF-8 stays readable
  CHECK(quote_for_message("bad \xff\xc3") == "\"bad \\xff\\xc3\"");       // bytes that are not UTF-8 do not
  CHECK(excerpt_for_message("a\"b\n") == "a\"b\\n");

  std::string huge(10 << 20, 'a');
  std::string quoted = quote_for_message(huge);
  CHECK(quoted == "\"" + std::string(64, 'a') + "\u2026\" (10485760 bytes)");
  CHECK(excerpt_for_message(huge, 8) == "aaaaaaaa\u2026 (10485760 bytes)");

  // Cut at a character boundary: 40 two-byte characters do not fit in 64 bytes.
  std::string accents;
  for (int i = 0; i < 40; ++i) accents += "\xc3\xa9";
  std::string cut = quote_for_message(accents);
  CHECK(cut.starts_with("\"" + accents.substr(0, 64) + "\u2026\""));
  CHECK(cut.ends_with("(80 bytes)"));
  // Escapes count against the limit too: the quoted text stays short whatever it holds.
  CHECK(quote_for_message(std::string(1000, '\x01')).size() < 64 + 32);
}

TEST_CASE("a 10 MB option value makes an error message of one short line") {
  std::vector<OptionSpec> schema = {
      option("mode", OptionType::string, "How").choices({"fast", "slow"}).default_value("fast"),
      option("count", OptionType::integer, "How many").default_value(1),
      option("names", OptionType::string_list, "Names").default_value(Value::array({})),
  };
  std::string huge(10 << 20, 'z');
  auto check_one = [&](const std::string& key, Value value, const std::string& starts) {
    Value::Table table;
    table.emplace_back(key, std::move(value));
    std::vector<ConfigError> errors;
    auto started = std::chrono::steady_clock::now();
    Options::validate(Value(std::move(table)), schema, errors);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
    REQUIRE(errors.size() == 1);
    std::string message = errors[0].what();
    CHECK_MESSAGE(message.size() < 200, message.substr(0, 300));
    CHECK_MESSAGE(message.starts_with(starts), message.substr(0, 300));
    if (key != "names") CHECK(contains(message, "(10485760 bytes)"));
  };
  check_one("mode", Value(huge), "option \"mode\" must be one of \"fast\", \"slow\", not \"zzzz");
  check_one("count", Value(huge), "option \"count\" must be an integer, not string \"zzzz");
  check_one("names", Value::array({Value("a"), Value(std::int64_t{1}), Value(huge)}),
            "option \"names\" must list strings only, not integer 1");
  check_one(huge, Value(1), "unknown option \"zzzz");

  Value::Array many;
  for (int i = 0; i < 1000; ++i) many.push_back(Value(i));
  Value::Table table;
  table.emplace_back("count", Value(std::move(many)));
  std::vector<ConfigError> errors;
  Options::validate(Value(std::move(table)), schema, errors);
  REQUIRE(errors.size() == 1);
  CHECK(std::string(errors[0].what()) == "option \"count\" must be an integer, not array […] (1000 values)");
}

TEST_CASE("a pipeline of more than kMaxStages stages is refused at the first one over, before any is configured") {
  auto pipeline = [](std::size_t stages) {
    std::string toml = "[inputs.s0]\nplugin = \"canned\"\n";
    for (std::size_t i = 1; i + 1 < stages; ++i)
      toml += "[filters.s" + std::to_string(i) + "]\nplugin = \"keep\"\nfrom = [\"s" + std::to_string(i - 1) +
              "\"]\ncontains = \"GET\"\n";
    toml += "[outputs.out]\nplugin = \"collect\"\nfrom = [\"s" + std::to_string(stages - 2) +
            "\"]\npath = \"/dev/null\"\n";
    return toml;
  };
  auto at_limit = build(pipeline(kMaxStages));
  CHECK_MESSAGE(at_limit.graph, at_limit.error_text());
  CHECK(at_limit.graph->stages.size() == kMaxStages);

  auto started = std::chrono::steady_clock::now();
  auto over = build(pipeline(10'000));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  CHECK(over.graph == nullptr);
  REQUIRE(over.errors.size() == 1);
  // The 257th stage is filters.s256, whose table starts on line 3 + 4 * 255.
  CHECK(over.errors[0].position().to_string() == "p.toml:" + std::to_string(3 + 4 * 255) + ":1");
  CHECK(std::string(over.errors[0].what()) ==
        "[filters.s256] is stage 257 of 10000; a pipeline has at most 256 stages (each runs on a thread of its own)");
}

TEST_CASE("the metrics server answers GET and HEAD /metrics, and refuses other methods, paths and sizes") {
  ServerFixture fixture;
  {
    Client c(fixture.port);
    REQUIRE(c.connected());
    c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    bool closed = false;
    std::string response = c.read_all(&closed);
    CHECK(closed);  // one request per connection
    CHECK(response.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(contains(response, "Content-Type: text/plain; version=0.0.4\r\n"));
    CHECK(contains(response, "Connection: close\r\n"));
    CHECK(contains(response, "Content-Length: 12\r\n"));
    CHECK(response.ends_with("\r\n\r\ndoppel_up 1\n"));
  }
  {
    Client c(fixture.port);
    c.send("GET /metrics?name[]=x HTTP/1.0\r\n\r\n");
    CHECK(c.read_all().starts_with("HTTP/1.0 200 OK\r\n"));
  }
  {
    Client c(fixture.port);
    c.send("HEAD /metrics HTTP/1.1\r\n\r\n");
    std::string response = c.read_all();
    CHECK(response.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(contains(response, "Content-Length: 12\r\n"));
    CHECK(response.ends_with("\r\n\r\n"));
  }
  {
    Client c(fixture.port);
    c.send("GET / HTTP/1.1\r\n\r\n");
    CHECK(c.read_all().starts_with("HTTP/1.1 404 Not Found\r\n"));
  }
  {
    Client c(fixture.port);
    c.send("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    std::string response = c.read_all();
    CHECK(response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    CHECK(contains(response, "Allow: GET, HEAD\r\n"));
  }
  {
    Client c(fixture.port);
    c.send("GET /metrics HTTP/1.1\r\nX-Big: " + std::string(9000, 'b') + "\r\n\r\n");
    CHECK(c.read_all().starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  }
  {
    Client c(fixture.port);
    c.send("NOT HTTP AT ALL\r\n\r\n");
    CHECK(c.read_all().starts_with("HTTP/1.1 400 Bad Request\r\n"));
  }
  auto counts = fixture.server->counts();
  CHECK(counts.served == 3);
  CHECK(counts.rejected == 4);
}

TEST_CASE("a request that does not arrive whole in time is cut off, and the connection closed") {
  MetricsServer::Limits limits;
  limits.request_timeout = std::chrono::milliseconds(300);
  ServerFixture fixture(limits);
  Client slow(fixture.port);
  slow.send("GET /metr");  // and nothing more
  auto started = std::chrono::steady_clock::now();
  bool closed = false;
  CHECK(slow.read_all(&closed).empty());
  CHECK(closed);
  auto took = std::chrono::steady_clock::now() - started;
  CHECK(took >= std::chrono::milliseconds(250));
  CHECK(took < std::chrono::seconds(3));
  CHECK(eventually([&] { return fixture.server->counts().timed_out == 1; }));
}

TEST_CASE("at the connection cap, the oldest connection still waiting for its request makes room") {
  MetricsServer::Limits limits;
  limits.max_connections = 4;
  ServerFixture fixture(limits);
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<Client>(fixture.port));
    idle.back()->send("GET /");
  }
  REQUIRE(eventually([&] { return fixture.server->counts().accepted == 4; }));
  Client scrape(fixture.port);
  scrape.send("GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(scrape.read_all().ends_with("doppel_up 1\n"));
  bool closed = false;
  idle.front()->read_all(&closed);
  CHECK(closed);  // the oldest gave way
  auto counts = fixture.server->counts();
  CHECK(counts.evicted == 1);
  CHECK(counts.served == 1);
}

TEST_CASE("an address in use fails the server at once, naming the address") {
  ServerFixture first;
  ListenAddress taken{"127.0.0.1", first.port, "127.0.0.1:" + std::to_string(first.port)};
  boost::asio::io_context io;
  try {
    MetricsServer second(io, taken, [] { return std::string(); });
    FAIL("bound a port already in use");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "cannot serve /metrics on " + taken.text + ": Address already in use");
  }
}
