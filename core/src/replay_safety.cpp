#include "replay_safety.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>
#include <set>

namespace doppel::core {
namespace {

struct Target {
  std::string host;
  std::uint16_t port = 0;
};

// scheme://host[:port][/path]: the host and port a replaying output connects to.
std::optional<Target> target_of(std::string_view url) {
  auto sep = url.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  std::string_view scheme = url.substr(0, sep), rest = url.substr(sep + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  Target t;
  t.port = scheme == "https" ? 443 : 80;
  std::string_view port_text;
  if (rest.starts_with("[")) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    t.host = std::string(rest.substr(1, close - 1));
    if (close + 1 < rest.size() && rest[close + 1] == ':') port_text = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    t.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
  }
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || value == 0 || value > 65535)
      return std::nullopt;
    t.port = static_cast<std::uint16_t>(value);
  }
  return t;
}

// The addresses a host name or literal stands for, as text (inet_ntop).
std::set<std::string> addresses_of(const std::string& host) {
  std::set<std::string> out;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0) return out;
  for (addrinfo* a = result; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, text, sizeof text);
    else if (a->ai_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, text, sizeof text);
    if (text[0] != '\0') out.insert(text);
  }
  freeaddrinfo(result);
  return out;
}

bool loopback(const std::string& address) {
  return address == "::1" || address.starts_with("127.");
}

// The addresses of this machine's interfaces.
std::set<std::string> local_addresses() {
  std::set<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    char text[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof text);
    else if (i->ifa_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, text, sizeof text);
    if (text[0] != '\0') out.insert(text);
  }
  freeifaddrs(list);
  return out;
}

bool declares(const StageNode& node, std::string_view option) {
  return std::any_of(node.definition->options.begin(), node.definition->options.end(),
                     [&](const OptionSpec& o) { return o.name == option; });
}

bool flag(const StageNode& node, std::string_view option) {
  const Value* v = node.spec->options.find(option);
  return v != nullptr && v->is_bool() && v->as_bool();
}

// A live capture's server ports (`port`, `ports`); empty for anything else.
std::vector<std::uint16_t> captured_ports(const StageNode& node) {
  std::vector<std::uint16_t> ports;
  const Value* interface = node.spec->options.find("interface");
  if (node.spec->role != Role::input || interface == nullptr || !interface->is_string()) return ports;
  if (const Value* port = node.spec->options.find("port"); port != nullptr && port->is_integer())
    ports.push_back(static_cast<std::uint16_t>(port->as_integer()));
  if (const Value* list = node.spec->options.find("ports"); list != nullptr && list->is_array())
    for (const Value& p : list->as_array()) {
      unsigned value = 0;
      if (p.is_string()) std::from_chars(p.as_string().data(), p.as_string().data() + p.as_string().size(), value);
      if (p.is_integer()) value = static_cast<unsigned>(p.as_integer());
      if (value > 0 && value <= 65535) ports.push_back(static_cast<std::uint16_t>(value));
    }
  return ports;
}

// A stage that replays: an output with a `url` that declares the rails' options.
const Value* replay_url(const StageNode& node) {
  if (node.spec->role != Role::output || !declares(node, "allow_replay_to_capture")) return nullptr;
  const Value* url = node.spec->options.find("url");
  return url != nullptr && url->is_string() ? url : nullptr;
}

}  // namespace

void check_replay_targets(const std::vector<StageNode>& nodes, std::vector<ConfigError>& errors) {
  std::optional<std::set<std::string>> local;  // looked up once, only when needed
  for (const auto& node : nodes) {
    const Value* url = replay_url(node);
    if (url == nullptr || flag(node, "allow_replay_to_capture")) continue;
    auto target = target_of(url->as_string());
    if (!target) continue;  // the output itself reports a malformed url
    std::set<std::string> target_addresses;
    for (int i : node.fed_by) {
      const StageNode& input = nodes[i];
      auto ports = captured_ports(input);
      if (std::find(ports.begin(), ports.end(), target->port) == ports.end()) continue;
      if (target_addresses.empty()) target_addresses = addresses_of(target->host);
      // The captured service: the capture's `host` when it names one, else this machine.
      std::set<std::string> captured;
      if (const Value* host = input.spec->options.find("host"); host != nullptr && host->is_string() &&
                                                               !host->as_string().empty()) {
        captured = addresses_of(host->as_string());
      } else {
        if (!local) local = local_addresses();
        captured = *local;
      }
      bool same = std::any_of(target_addresses.begin(), target_addresses.end(), [&](const std::string& a) {
        return captured.count(a) || (loopback(a) && captured.count("127.0.0.1"));
      });
      if (!same) continue;
      errors.emplace_back(url->position, "outputs." + node.spec->name + ".url",
                          "replays to " + target->host + ":" + std::to_string(target->port) +
                              ", the service that [inputs." + input.spec->name +
                              "] captures: production traffic would be replayed into production, doubling "
                              "every write. Point url at the candidate, or set allow_replay_to_capture = true "
                              "if this is intended");
      break;
    }
  }
}

std::vector<std::string> replay_write_warnings(const PipelineGraph& graph) {
  std::vector<std::string> warnings;
  const auto& nodes = graph.stages;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const StageNode& node = nodes[i];
    if (replay_url(node) == nullptr || flag(node, "replay_writes")) continue;
    // A `method` stage anywhere upstream decides which methods are replayed.
    std::vector<bool> seen(nodes.size(), false);
    std::vector<int> todo{static_cast<int>(i)};
    bool method_filter = false;
    while (!todo.empty() && !method_filter) {
      int v = todo.back();
      todo.pop_back();
      for (int u : nodes[v].upstream) {
        if (seen[u]) continue;
        seen[u] = true;
        method_filter = nodes[u].spec->plugin == "method";
        todo.push_back(u);
      }
    }
    if (method_filter) continue;
    warnings.push_back(node.spec->position.to_string() + ": warning: [outputs." + node.spec->name +
                       "] replays every method, POST, PUT, PATCH and DELETE included: they change the "
                       "target's state. Keep the methods to replay with a `method` filter, or set "
                       "replay_writes = true to say the target may take them");
  }
  return warnings;
}

}  // namespace doppel::core
