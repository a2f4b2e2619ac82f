#include "doppel/http_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <list>
#include <optional>
#include <stdexcept>

#include "doppel/units.hpp"

namespace doppel {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// The first of a run of events is logged at once, then at most one line per interval saying
// how many came since: a flood of connections must not become a flood of log lines.
class ThrottledLog {
 public:
  explicit ThrottledLog(std::chrono::seconds every) : every_(every) {}
  // How many events to report now, this one included; 0 when it is not time yet.
  std::uint64_t note(Clock::time_point now) {
    ++unreported_;
    if (logged_ && now - last_ < every_) return 0;
    logged_ = true;
    last_ = now;
    return std::exchange(unreported_, 0);
  }

 private:
  std::chrono::seconds every_;
  Clock::time_point last_{};
  bool logged_ = false;
  std::uint64_t unreported_ = 0;
};

bool out_of_descriptors(const boost::system::error_code& ec) {
  return ec == boost::system::errc::too_many_files_open || ec == boost::system::errc::too_many_files_open_in_system ||
         ec == boost::system::errc::no_buffer_space || ec == boost::system::errc::not_enough_memory;
}

// Beast's parse errors, as opposed to what the socket reported.
bool is_http_error(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_method).category();
}

class HttpConnection;

}  // namespace

// Everything below runs on `strand`: the acceptor, the timers and every connection.
struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  State(asio::io_context& io, HttpServer::Config server_config)
      : strand(asio::make_strand(io)),
        acceptor(strand),
        backoff(strand),
        config(std::move(server_config)),
        limits(config.limits),
        log(spdlog::default_logger()->clone(config.logger)) {}

  void accept();
  void on_accept(const boost::system::error_code& ec, tcp::socket socket);
  bool evict_oldest_waiting();
  void close_all();
  const HttpServer::Route* route(std::string_view path) const {
    for (const auto& r : config.routes)
      if (r.path == path) return &r;
    return nullptr;
  }

  asio::strand<asio::io_context::executor_type> strand;
  tcp::acceptor acceptor;
  asio::steady_timer backoff;
  HttpServer::Config config;
  const Limits& limits;
  std::string address;
  std::shared_ptr<spdlog::logger> log;
  std::list<std::shared_ptr<HttpConnection>> connections;  // oldest first
  bool closed = false;

  std::atomic<std::uint64_t> accepted{0}, served{0}, timed_out{0}, rejected{0}, evicted{0}, accept_failures{0},
      handler_failures{0};
  // A run of accept failures, from the first to the next accepted connection.
  std::uint64_t failures_in_a_row = 0;
  Clock::time_point failing_since{};
  bool failure_reported = false;  // one of the failures in a row was logged
  ThrottledLog failure_log{std::chrono::seconds(10)}, eviction_log{std::chrono::seconds(10)},
      handler_log{std::chrono::seconds(10)};
};

namespace {

// One connection: read one request (whole, within the deadline, within the size limit),
// answer it, close. Prometheus opens a connection per scrape when told `Connection: close`, and
// so does a browser.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(std::shared_ptr<HttpServer::State> server, tcp::socket socket)
      : server_(std::move(server)), stream_(std::move(socket)), buffer_(server_->limits.max_request_bytes) {}

  void start() {
    parser_.header_limit(static_cast<std::uint32_t>(server_->limits.max_request_bytes));
    stream_.expires_after(server_->limits.request_timeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](const beast::error_code& ec, std::size_t) { self->on_read(ec); });
  }

  // Still waiting for its request: what gives way when room is needed.
  bool waiting() const { return waiting_ && !closed_; }

  void close() {
    if (closed_) return;
    closed_ = true;
    auto keep = shared_from_this();  // the list may hold the last reference
    server_->connections.erase(where);
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();  // cancels the pending read or write and the deadline
  }

  std::list<std::shared_ptr<HttpConnection>>::iterator where;

 private:
  void on_read(const beast::error_code& ec) {
    waiting_ = false;
    if (closed_) return;  // evicted, or the server closed
    if (ec == beast::error::timeout) {
      ++server_->timed_out;
      close();
      return;
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || (ec && !is_http_error(ec))) {
      close();  // the client went away
      return;
    }
    if (ec) {
      bool too_large = ec == http::error::header_limit || ec == http::error::buffer_overflow;
      ++server_->rejected;
      if (too_large)
        respond(http::status::request_header_fields_too_large, 11,
                "request larger than " + format_size(server_->limits.max_request_bytes) + "\n");
      else respond(http::status::bad_request, 11, "malformed request: " + ec.message() + "\n");
      return;
    }
    const auto& request = parser_.get();
    std::string_view target(request.target().data(), request.target().size());
    auto question = target.find('?');
    HttpServer::Request asked;
    asked.head = request.method() == http::verb::head;
    asked.path = target.substr(0, question);
    asked.query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    const HttpServer::Route* route = server_->route(asked.path);
    if (request.method() != http::verb::get && !asked.head) {
      ++server_->rejected;
      response_.set(http::field::allow, "GET, HEAD");
      respond(http::status::method_not_allowed, request.version(), "only GET and HEAD are served\n");
    } else if (!route) {
      ++server_->rejected;
      std::string paths;
      for (const auto& r : server_->config.routes) paths += (paths.empty() ? "" : ", ") + r.path;
      respond(http::status::not_found, request.version(), "not found; served here: " + paths + "\n", asked.head);
    } else {
      HttpServer::Response answer;
      try {
        answer = route->handler(asked);
      } catch (const std::exception& e) {
        ++server_->handler_failures;
        if (std::uint64_t n = server_->handler_log.note(Clock::now()))
          server_->log->error("answering {} on {} failed: {} ({} failure{} since the last report)", route->path,
                              server_->address, e.what(), n, n == 1 ? "" : "s");
        answer = HttpServer::Response{500, "internal error; see the log\n"};
      }
      if (answer.status >= 400 && answer.status < 500) ++server_->rejected;
      respond(static_cast<http::status>(answer.status), request.version(), std::move(answer.body), asked.head,
              answer.content_type);
    }
  }

  void respond(http::status status, unsigned version, std::string body, bool head = false,
               std::string_view content_type = "text/plain; charset=utf-8") {
    response_.result(status);
    response_.version(version);
    response_.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
    response_.keep_alive(false);
    response_.body() = std::move(body);
    response_.prepare_payload();
    if (head) response_.body().clear();  // Content-Length still says what GET would send
    stream_.expires_after(server_->limits.request_timeout);
    http::async_write(stream_, response_, [self = shared_from_this()](const beast::error_code& ec, std::size_t) {
      self->on_written(ec);
    });
  }

  void on_written(const beast::error_code& ec) {
    if (ec == beast::error::timeout) ++server_->timed_out;
    else if (!ec && response_.result() == http::status::ok) ++server_->served;
    close();
  }

  std::shared_ptr<HttpServer::State> server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;  // at most max_request_bytes: a larger request fails as buffer_overflow
  http::request_parser<http::empty_body> parser_;  // GET and HEAD carry no body: one is malformed
  http::response<http::string_body> response_;
  bool waiting_ = true, closed_ = false;
};

}  // namespace

void HttpServer::State::accept() {
  acceptor.async_accept([self = shared_from_this()](const boost::system::error_code& ec, tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void HttpServer::State::on_accept(const boost::system::error_code& ec, tcp::socket socket) {
  if (closed || ec == asio::error::operation_aborted) return;
  auto now = Clock::now();
  if (ec) {
    // Keep serving: pause, then accept again. A connection still waiting for its request is
    // the cheapest descriptor to give back when they ran out.
    ++accept_failures;
    if (failures_in_a_row++ == 0) failing_since = now;
    if (std::uint64_t n = failure_log.note(now)) {
      log->warn("cannot accept connections on {}: {} ({} failed attempt{} since the last report); retrying every {}",
                address, ec.message(), n, n == 1 ? "" : "s", format_duration(limits.accept_backoff));
      failure_reported = true;
    }
    if (out_of_descriptors(ec)) evict_oldest_waiting();
    backoff.expires_after(limits.accept_backoff);
    backoff.async_wait([self = shared_from_this()](const boost::system::error_code& wait_ec) {
      if (!wait_ec && !self->closed) self->accept();
    });
    return;
  }
  if (failures_in_a_row) {
    // Said only after a failure that was reported: when running short of descriptors makes
    // accept fail and succeed by turns, the pair is logged once per interval, not per turn.
    if (failure_reported)
      log->warn("accepting connections on {} again, after {} failed attempt{} over {}", address, failures_in_a_row,
                failures_in_a_row == 1 ? "" : "s", format_duration(now - failing_since));
    failures_in_a_row = 0;
    failure_reported = false;
  }
  ++accepted;
  if (connections.size() >= limits.max_connections && !evict_oldest_waiting()) {
    // Every connection held is being answered; this one gets no answer rather than waiting.
    ++rejected;
    boost::system::error_code ignored;
    socket.close(ignored);
  } else {
    auto connection = std::make_shared<HttpConnection>(shared_from_this(), std::move(socket));
    connection->where = connections.insert(connections.end(), connection);
    connection->start();
  }
  accept();
}

bool HttpServer::State::evict_oldest_waiting() {
  for (auto& connection : connections) {
    if (!connection->waiting()) continue;
    connection->close();  // removes it from `connections`: return before the loop goes on
    ++evicted;
    if (std::uint64_t n = eviction_log.note(Clock::now()))
      log->warn("closed {} connection{} that had not sent a request yet, to make room ({} connections at most, "
                "{} open now)",
                n, n == 1 ? "" : "s", limits.max_connections, connections.size());
    return true;
  }
  return false;
}

void HttpServer::State::close_all() {
  closed = true;
  backoff.cancel();
  boost::system::error_code ignored;
  acceptor.close(ignored);
  while (!connections.empty()) connections.front()->close();
}

HttpServer::HttpServer(asio::io_context& io, const ListenAddress& address, Config config)
    : state_(std::make_shared<State>(io, std::move(config))) {
  auto& acceptor = state_->acceptor;
  state_->address = address.text;
  auto listen_on = [&](const tcp::endpoint& endpoint) {
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
  };
  try {
    if (address.host.empty()) {
      // Every interface: IPv6 and IPv4 on one dual-stack socket, or IPv4 alone on a host
      // without IPv6.
      boost::system::error_code no_ipv6;
      acceptor.open(tcp::v6(), no_ipv6);
      if (!no_ipv6) acceptor.set_option(asio::ip::v6_only(false));
      else acceptor.open(tcp::v4());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      listen_on(tcp::endpoint(no_ipv6 ? tcp::v4() : tcp::v6(), address.port));
    } else {
      tcp::endpoint endpoint(asio::ip::make_address(address.host), address.port);
      acceptor.open(endpoint.protocol());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      listen_on(endpoint);
    }
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot serve " + state_->config.what + " on " + address.text + ": " + e.code().message());
  }
  asio::post(state_->strand, [state = state_] { state->accept(); });
}

HttpServer::~HttpServer() { state_->close_all(); }

tcp::endpoint HttpServer::local_endpoint() const { return state_->acceptor.local_endpoint(); }

HttpServer::Counts HttpServer::counts() const {
  Counts c;
  c.accepted = state_->accepted.load();
  c.served = state_->served.load();
  c.timed_out = state_->timed_out.load();
  c.rejected = state_->rejected.load();
  c.evicted = state_->evicted.load();
  c.accept_failures = state_->accept_failures.load();
  c.handler_failures = state_->handler_failures.load();
  return c;
}

}  // namespace doppel
