#include "doppel/listen_address.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <stdexcept>

#include "doppel/options.hpp"

namespace doppel {
namespace {

// `shape`: the text is not HOST:PORT at all, so the message lists the forms that are.
[[noreturn]] void bad_address(std::string_view text, const std::string& why, bool shape = false) {
  std::string message = "invalid address " + quote_for_message(text) + ": " + why;
  if (shape) message += "; expected HOST:PORT, [IPv6]:PORT or :PORT (every interface), e.g. \"127.0.0.1:9464\"";
  throw std::invalid_argument(message);
}

std::uint16_t read_port(std::string_view text, std::string_view port, bool any_port) {
  unsigned value = 0;
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits) std::from_chars(port.data(), port.data() + port.size(), value);
  if (!digits || (value == 0 && !any_port) || value > 65535)
    bad_address(text, std::string("the port must be a number from ") + (any_port ? "0 (any free port)" : "1") +
                          " to 65535, not " + quote_for_message(port));
  return static_cast<std::uint16_t>(value);
}

bool is_ip_address(int family, const std::string& host) {
  unsigned char address[sizeof(in6_addr)];
  return inet_pton(family, host.c_str(), address) == 1;
}

// RFC 1123: dot-separated labels of letters, digits and '-', each 1-63 long, 253 in all.
bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
      if (++label > 63) return false;
    } else {
      return false;
    }
  }
  return true;
}

// The host's first IPv4 address, else its first IPv6 one, as a literal: `localhost` binds
// where Prometheus exporters bind it (127.0.0.1), and the run binds what validate checked.
std::string resolve_host(std::string_view text, const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0)
    bad_address(text, "cannot resolve " + quote_for_message(host) + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
  const addrinfo* pick = nullptr;
  for (int family : {AF_INET, AF_INET6}) {
    for (const addrinfo* a = found; a && !pick; a = a->ai_next)
      if (a->ai_family == family) pick = a;
    if (pick) break;
  }
  if (!pick) bad_address(text, quote_for_message(host) + " has no IPv4 or IPv6 address");
  char literal[INET6_ADDRSTRLEN] = {};
  const void* address = nullptr;
  if (pick->ai_family == AF_INET) address = &reinterpret_cast<const sockaddr_in*>(pick->ai_addr)->sin_addr;
  else address = &reinterpret_cast<const sockaddr_in6*>(pick->ai_addr)->sin6_addr;
  inet_ntop(pick->ai_family, address, literal, sizeof literal);
  return literal;
}

}  // namespace

ListenAddress parse_listen_address(std::string_view text, bool any_port) {
  ListenAddress out;
  out.text = std::string(text);
  std::string_view host, port;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos) bad_address(text, "no \"]\" after the IPv6 address", true);
    host = text.substr(1, close - 1);
    if (text.substr(close + 1, 1) != ":") bad_address(text, "no \":PORT\" after \"]\"", true);
    out.port = read_port(text, text.substr(close + 2), any_port);
    if (!is_ip_address(AF_INET6, std::string(host)))
      bad_address(text, quote_for_message(host, 24) + " is not an IPv6 address");
    out.host = std::string(host);
    return out;
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits)
      bad_address(text, "no host; write \"127.0.0.1:" + std::string(text) + "\" for this machine only or \":" +
                            std::string(text) + "\" for every interface");
    bad_address(text, "no port", true);
  }
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos)
    bad_address(text, "an IPv6 address goes in brackets, as in \"[::1]:9464\"", true);
  out.port = read_port(text, port, any_port);  // before resolving: a bad port needs no DNS to be refused
  std::string name(host);
  if (name.empty() || is_ip_address(AF_INET, name)) out.host = name;
  else if (is_host_name(name)) out.host = resolve_host(text, name);
  else bad_address(text, quote_for_message(name, 24) + " is neither an IPv4 address nor a host name");
  return out;
}

}  // namespace doppel
