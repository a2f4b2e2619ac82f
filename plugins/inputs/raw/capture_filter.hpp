#pragma once
// The BPF filter generated from port/ports/host: libpcap's expression for plain IP, the same
// test written with explicit offsets inside VLAN tags, PPPoE, MPLS, VXLAN and GRE, and its
// verdict computed without BPF where that is cheaper or where BPF cannot look (NFLOG).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "capture_file.hpp"
#include "packet_decoder.hpp"

namespace doppel::plugins::raw {

// The filter made from port/ports/host when no `bpf` is given.
struct GeneratedFilter {
  std::vector<std::uint16_t> ports;
  std::string host;
  bool requests_only = false;  // packets to the ports only (dst port), for captures without responses

  // The BPF program, e.g. "tcp and (port 80 or port 8080) and host 10.0.0.1 and (...)".
  std::string expression() const;
  // As compiled for a link type: on Ethernet and Linux cooked links the same test also
  // matches inside up to 8 VLAN tags, PPPoE, MPLS, VXLAN and GRE (see EncapsulatedFilter);
  // "" on NFLOG, which BPF cannot read (verdict() filters there).
  std::string expression_for(int link_type) const;
  // `host` as addresses (itself when literal, else resolved); nullopt when it does not resolve.
  std::optional<std::vector<IpAddress>> host_addresses() const;
  // The expression's port and host test on a decoded segment (pure ACKs are not left out);
  // `hosts`: host_addresses(), resolved once by the caller. An encapsulated segment must pass
  // it as well as BPF: BPF tested it only in part.
  bool matches(const TcpSegment& segment, const std::vector<IpAddress>& hosts) const;
  // Its verdict on a frame decoded as IPv4 TCP without a VLAN tag, found without running BPF
  // (which costs as much as decoding the frame); nullopt for every other frame: BPF decides.
  // On NFLOG, which BPF cannot read, it is the filter for every TCP frame (`hosts` as for matches()).
  std::optional<bool> verdict(int link_type, const CapturedFrame& frame, const TcpSegment& segment,
                              const std::vector<IpAddress>& hosts = {}) const;
};

}  // namespace doppel::plugins::raw
