#pragma once
// Where a server doppel runs listens (the runtime's /metrics, the report's live view), as
// configuration files write it, checked when the file is read.
#include <cstdint>
#include <string>
#include <string_view>

namespace doppel {

// An IP literal (a host name such as `localhost` is resolved when it is read) and a port.
struct ListenAddress {
  std::string host;        // "127.0.0.1", "::1"; "" for every interface, IPv6 and IPv4
  std::uint16_t port = 0;  // 1-65535; 0 (only when allowed): any free port, chosen when binding
  std::string text;        // as written, for logs
};

// Reads HOST:PORT, [IPv6]:PORT, :PORT (every interface, as Prometheus exporters do) and
// NAME:PORT (resolved now, IPv4 first). Port 0 is refused unless `any_port` allows it (a server
// whose address is logged, not scraped). Throws std::invalid_argument saying what is wrong and
// what is accepted.
ListenAddress parse_listen_address(std::string_view text, bool any_port = false);

}  // namespace doppel
