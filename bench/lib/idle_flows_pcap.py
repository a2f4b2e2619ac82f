"""A pcap of many concurrent idle HTTP connections, then ordinary traffic, written as it is made.

    python3 idle_flows_pcap.py OUT.pcap FLOWS [EXCHANGES]

FLOWS client connections (distinct address and port) each open with SYN, SYN-ACK and one segment
carrying the first part of a request (no blank line: the request never ends), and are never
closed. They all start within the first 20 s of capture time, so that with the raw input's
default `expire` (60 s) every one is alive at once. At 90 s (all of them idle past `expire`),
EXCHANGES ordinary exchanges follow on new connections: handshake, request, response, FIN both
ways. Ethernet frames, IPv4, checksums left zero (as a capture on a host with checksum offload
has them; doppel does not check them). Nothing is held in memory but one frame.
"""
import struct
import sys

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)  # microseconds, LINKTYPE_ETHERNET
RECORD = struct.Struct("<IIII")
ETHERNET = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
IPV4 = struct.Struct("!BBHHHBBH4s4s")
TCP = struct.Struct("!HHIIBBHHH")
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
SERVER = bytes([10, 255, 0, 1])
SERVER_PORT = 80
T0 = 1_700_000_000  # seconds


def client_of(index):
    """A distinct (address, port) for connection `index`: 50,000 ports per address."""
    host, port = divmod(index, 50_000)
    return bytes([10, (host >> 16) & 0xFF, (host >> 8) & 0xFF, host & 0xFF]), 10_000 + port


class Writer:
    def __init__(self, out):
        self.out = out
        self.out.write(PCAP_HEADER)

    def frame(self, ts_us, src, sport, dst, dport, seq, ack, flags, payload=b""):
        tcp = TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0)
        ip = IPV4.pack(0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
        size = len(ETHERNET) + len(ip) + len(tcp) + len(payload)
        sec, usec = divmod(ts_us, 1_000_000)
        self.out.write(RECORD.pack(sec, usec, size, size) + ETHERNET + ip + tcp + payload)


def main():
    path, flows = sys.argv[1], int(sys.argv[2])
    exchanges = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
    with open(path, "wb", buffering=1 << 22) as f:
        w = Writer(f)
        spread_us = 20_000_000
        for i in range(flows):
            ts = T0 * 1_000_000 + i * spread_us // max(flows, 1)
            client, port = client_of(i)
            cisn, sisn = 1000 + i, 5000 + i
            w.frame(ts, client, port, SERVER, SERVER_PORT, cisn, 0, SYN)
            w.frame(ts + 1, SERVER, SERVER_PORT, client, port, sisn, cisn + 1, SYN | ACK)
            partial = b"GET /idle/%d HTTP/1.1\r\nHost: svc\r\nX-Started: " % i
            w.frame(ts + 2, client, port, SERVER, SERVER_PORT, cisn + 1, sisn + 1, PSH | ACK, partial)
        for k in range(exchanges):
            ts = (T0 + 90) * 1_000_000 + k * 100
            client, port = client_of(flows + k)
            cisn, sisn = 7000 + k, 9000 + k
            request = b"GET /busy/%d HTTP/1.1\r\nHost: svc\r\n\r\n" % k
            response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            w.frame(ts, client, port, SERVER, SERVER_PORT, cisn, 0, SYN)
            w.frame(ts + 1, SERVER, SERVER_PORT, client, port, sisn, cisn + 1, SYN | ACK)
            w.frame(ts + 2, client, port, SERVER, SERVER_PORT, cisn + 1, sisn + 1, PSH | ACK, request)
            cseq = cisn + 1 + len(request)
            w.frame(ts + 3, SERVER, SERVER_PORT, client, port, sisn + 1, cseq, PSH | ACK, response)
            sseq = sisn + 1 + len(response)
            w.frame(ts + 4, client, port, SERVER, SERVER_PORT, cseq, sseq, FIN | ACK)
            w.frame(ts + 5, SERVER, SERVER_PORT, client, port, sseq, cseq + 1, FIN | ACK)
            w.frame(ts + 6, client, port, SERVER, SERVER_PORT, cseq + 1, sseq + 1, ACK)


if __name__ == "__main__":
    main()
