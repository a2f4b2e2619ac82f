#pragma once
// A loopback HTTP/2 (h2c, prior knowledge) server for unit tests whose every answer is
// scripted: a response with trailers, RST_STREAM, silence, a GOAWAY after some requests, a
// connection closed under open streams. Built on libnghttp2's server session, so the frames
// are real HTTP/2; records what arrived on which connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace doppel::testing {

struct H2Request {
  int connection = 0;  // 1, 2, ... in accept order
  std::int32_t stream_id = 0;
  std::map<std::string, std::string> headers;  // pseudo-headers included
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string body;
};

struct H2Action {
  enum class Kind { reply, reset, silent, close_connection };
  static H2Action of(Kind kind) {
    H2Action a;
    a.kind = kind;
    return a;
  }
  Kind kind = Kind::reply;
  std::vector<std::pair<std::string, std::string>> headers{{":status", "200"}};
  std::string body;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::uint32_t reset_code = NGHTTP2_INTERNAL_ERROR;
};

class ScriptedH2Server {
 public:
  using Script = std::function<H2Action(const H2Request&)>;

  // `goaway_after`: a connection answers that many requests, then sends GOAWAY naming the
  // last of them (later streams were not processed) and closes; 0: never.
  explicit ScriptedH2Server(Script script, int goaway_after = 0) : script_(std::move(script)), goaway_after_(goaway_after) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listener_, 64);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~ScriptedH2Server() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  int connections() const { return connections_; }
  std::vector<H2Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  struct Connection {
    ScriptedH2Server* server = nullptr;
    int number = 0;
    int fd = -1;
    nghttp2_session* session = nullptr;
    std::map<std::int32_t, H2Request> streams;
    std::vector<std::int32_t> complete;  // requests received whole, to answer after mem_recv
    std::map<std::int32_t, std::pair<std::string, std::size_t>> bodies;  // response body, offset
    std::map<std::int32_t, std::vector<std::pair<std::string, std::string>>> trailers;
    int answered = 0;
    bool goaway = false;
    bool close_now = false;
  };

  void accept_loop() {
    while (!stopping_) {
      int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      std::lock_guard lock(mutex_);
      open_fds_.push_back(fd);
      int number = ++connections_;
      threads_.emplace_back([this, fd, number] { serve(fd, number); });
    }
  }

  static std::vector<nghttp2_nv> nva(const std::vector<std::pair<std::string, std::string>>& fields) {
    std::vector<nghttp2_nv> out;
    for (auto& [n, v] : fields)
      out.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                     reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    return out;
  }

  static ssize_t read_body(nghttp2_session* session, std::int32_t id, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source*, void* user) {
    auto* c = static_cast<Connection*>(user);
    auto& [body, offset] = c->bodies[id];
    std::size_t n = std::min(length, body.size() - offset);
    std::copy_n(body.data() + offset, n, buf);
    offset += n;
    if (offset == body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      auto& t = c->trailers[id];
      if (!t.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        auto fields = nva(t);
        nghttp2_submit_trailer(session, id, fields.data(), fields.size());
      }
    }
    return static_cast<ssize_t>(n);
  }

  void answer(Connection& c, std::int32_t id) {
    H2Request request = c.streams[id];
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(request);
    }
    H2Action action = script_(request);
    switch (action.kind) {
      case H2Action::Kind::silent:
        return;
      case H2Action::Kind::close_connection:
        c.close_now = true;
        return;
      case H2Action::Kind::reset:
        nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, action.reset_code);
        return;
      case H2Action::Kind::reply: {
        auto fields = nva(action.headers);
        c.bodies[id] = {action.body, 0};
        c.trailers[id] = action.trailers;
        nghttp2_data_provider provider{};
        provider.read_callback = &ScriptedH2Server::read_body;
        bool data = !action.body.empty() || !action.trailers.empty();
        nghttp2_submit_response(c.session, id, fields.data(), fields.size(), data ? &provider : nullptr);
      }
    }
  }

  void serve(int fd, int number) {
    Connection c;
    c.server = this;
    c.number = number;
    c.fd = fd;
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      auto* c = static_cast<Connection*>(u);
      if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        c->streams[f->hd.stream_id] = H2Request{c->number, f->hd.stream_id, {}, {}, {}};
      return 0;
    });
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl, const std::uint8_t* v,
               std::size_t vl, std::uint8_t, void* u) {
          auto* c = static_cast<Connection*>(u);
          auto& r = c->streams[f->hd.stream_id];
          std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
          if (f->headers.cat == NGHTTP2_HCAT_REQUEST) r.headers[name] = value;
          else r.trailers.emplace_back(name, value);
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d, std::size_t len, void* u) {
          static_cast<Connection*>(u)->streams[id].body.append(reinterpret_cast<const char*>(d), len);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      auto* c = static_cast<Connection*>(u);
      if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
          c->streams.count(f->hd.stream_id))
        c->complete.push_back(f->hd.stream_id);
      return 0;
    });
    nghttp2_session_server_new(&c.session, cb, &c);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings, 1);
    char buf[65536];
    bool ok = flush(c);
    while (ok) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      if (nghttp2_session_mem_recv(c.session, reinterpret_cast<std::uint8_t*>(buf), static_cast<std::size_t>(n)) < 0)
        break;
      auto complete = std::move(c.complete);
      c.complete.clear();
      for (std::int32_t id : complete) {
        if (c.goaway) break;  // not processed: named in no response, above GOAWAY's last stream id
        answer(c, id);
        if (goaway_after_ > 0 && ++c.answered == goaway_after_) {
          c.goaway = true;
          nghttp2_submit_goaway(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR, nullptr, 0);
        }
      }
      if (c.close_now) break;
      ok = flush(c);
      if (c.goaway) break;  // answered what it took, GOAWAY sent: closes
    }
    // Half-close, then read until the client closes: closing with unread bytes would send a
    // TCP RST, which can destroy the responses still on their way.
    ::shutdown(fd, SHUT_WR);
    timeval wait{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    while (!stopping_ && ::recv(fd, buf, sizeof buf, 0) > 0) {
    }
    nghttp2_session_del(c.session);
    std::lock_guard lock(mutex_);
    std::erase(open_fds_, fd);
    ::close(fd);
  }

  static bool flush(Connection& c) {
    const std::uint8_t* data = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c.session, &data)) > 0) {
      for (ssize_t sent = 0; sent < n;) {
        ssize_t w = ::send(c.fd, data + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
        if (w <= 0) return false;
        sent += w;
      }
    }
    return n == 0;
  }

  Script script_;
  int goaway_after_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  mutable std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::vector<int> open_fds_;
  std::vector<H2Request> requests_;
};

}  // namespace doppel::testing
