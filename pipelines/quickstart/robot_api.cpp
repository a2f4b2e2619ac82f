// robot-api: a small example service with the three endpoints of the seed workflow, in two
// versions. v2 is v1 with a few subtle changes, the kind a rewrite introduces:
//   - /v2/robot/query: `confidence` is rounded to 2 digits instead of 3 for long questions;
//   - /v2/robot/input_hint: hints come in another order for texts of odd length, and none at
//     all for text shorter than 3 characters (v1 still suggests);
//   - /v1/robot/intention: the same intentions, an extra one for greetings;
//   - unknown robots get 404 in v2 (v1 answered 200 with an error code).
// Every response carries a random `trace_id` (noise a comparator must ignore).
//
//   robot-api --version v1|v2 --port N [--host 127.0.0.1]
#include <simdjson.h>

#include <boost/asio.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

bool v2 = false;

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

std::string trace_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + quote(items[i]);
  return out + "]";
}

struct Reply {
  int status = 200;
  std::string body;
};

Reply handle(std::string_view method, std::string_view path, const std::string& body) {
  if (method != "POST") return {405, R"({"code":405,"message":"use POST"})"};
  simdjson::dom::parser parser;
  simdjson::dom::object req;
  if (parser.parse(body).get(req)) return {400, R"({"code":400,"message":"body must be a JSON object"})"};
  std::string robot;
  if (auto r = req["robot_id"]; r.is_string()) robot = std::string(r.get_string().value());
  else if (r.is_int64()) robot = std::to_string(r.get_int64().value());
  std::string text;
  if (auto t = req["text"]; t.is_string()) text = std::string(t.get_string().value());
  bool known = robot == "664" || robot == "665" || robot == "700";
  if (!known) {
    if (v2) return {404, R"({"code":404,"message":"unknown robot"})"};
    return {200, R"({"code":1001,"message":"unknown robot","results":null})"};
  }
  std::string head = "{\"code\":0,\"robot_id\":" + quote(robot) + ",\"results\":{";
  std::string tail = ",\"trace_id\":" + quote(trace_id()) + "}}";
  if (path == "/v2/robot/query") {
    // A deterministic "answer" and confidence derived from the question.
    unsigned h = 0;
    for (char c : text) h = h * 31 + static_cast<unsigned char>(c);
    double confidence = 0.5 + (h % 500) / 1000.0;
    char conf[32];
    if (v2 && text.size() > 20) std::snprintf(conf, sizeof conf, "%.2f", confidence);
    else std::snprintf(conf, sizeof conf, "%.3f", confidence);
    std::string answer = text.empty() ? "Ask me something." : "You asked about " + text.substr(0, 40) + ".";
    return {200, head + "\"answer\":" + quote(answer) + ",\"confidence\":" + conf + tail};
  }
  if (path == "/v2/robot/input_hint") {
    std::vector<std::string> hints;
    if (!(v2 && text.size() < 3)) {
      hints = {text + " weather", text + " news", text + " music"};
      if (v2 && text.size() % 2 == 1) std::swap(hints[0], hints[2]);
    }
    return {200, head + "\"hint_list\":" + list(hints) + tail};
  }
  if (path == "/v1/robot/intention") {
    std::vector<std::string> intentions;
    if (text.find("weather") != std::string::npos) intentions.push_back("ask_weather");
    if (text.find("play") != std::string::npos) intentions.push_back("play_music");
    if (v2 && (text.starts_with("hi") || text.starts_with("hello"))) intentions.push_back("greeting");
    if (intentions.empty() && !v2) intentions.push_back("chitchat");
    return {200, head + "\"intention_list\":" + list(intentions) + tail};
  }
  return {404, R"({"code":404,"message":"no such endpoint"})"};
}

void serve(tcp::socket socket) {
  try {
    asio::streambuf buf;
    for (;;) {
      std::size_t n = asio::read_until(socket, buf, "\r\n\r\n");
      std::string head(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(n));
      buf.consume(n);
      std::size_t length = 0;
      bool close = false;
      std::string lower = head;
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (auto p = lower.find("\r\ncontent-length:"); p != std::string::npos) length = std::stoul(lower.substr(p + 17));
      if (lower.find("\r\nconnection: close") != std::string::npos) close = true;
      if (length > (1u << 20)) return;
      if (buf.size() < length) asio::read(socket, buf, asio::transfer_exactly(length - buf.size()));
      std::string body(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(length));
      buf.consume(length);
      auto sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
      std::string method = head.substr(0, sp1);
      std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
      std::string path = target.substr(0, target.find('?'));
      Reply r = handle(method, path, body);
      const char* reason = r.status == 200 ? "OK" : r.status == 404 ? "Not Found" : r.status == 400 ? "Bad Request" : "Error";
      std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason +
                        "\r\nContent-Type: application/json\r\nServer: robot-api/" + (v2 ? "2" : "1") +
                        "\r\nContent-Length: " + std::to_string(r.body.size()) + "\r\n" +
                        (close ? "Connection: close\r\n" : "") + "\r\n" + r.body;
      asio::write(socket, asio::buffer(out));
      if (close) return;
    }
  } catch (const std::exception&) {
    // The client went away or sent something unparseable: drop the connection.
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--version") v2 = std::string(argv[i + 1]) == "v2";
    else if (a == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (a == "--host") host = argv[i + 1];
    else {
      std::cerr << "usage: robot-api --version v1|v2 --port N [--host 127.0.0.1]\n";
      return 2;
    }
  }
  if (port == 0) {
    std::cerr << "usage: robot-api --version v1|v2 --port N [--host 127.0.0.1]\n";
    return 2;
  }
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address(host), port));
  std::cerr << "robot-api " << (v2 ? "v2" : "v1") << " listening on " << host << ":" << port << std::endl;
  for (;;) {
    tcp::socket socket(io);
    acceptor.accept(socket);
    std::thread(serve, std::move(socket)).detach();
  }
}
