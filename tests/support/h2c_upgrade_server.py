#!/usr/bin/python3
"""An HTTP/2 server that accepts `Upgrade: h2c` (RFC 7540 3.2), built on python3-h2 (Debian's
hyper-h2): no server in Debian 12 offers the upgrade, and the tests must see real clients
(curl --http2) take it. Serves files from a directory; POST echoes the body; every response
ends with a trailer `x-served-by`, to exercise trailers after the switch.
  h2c_upgrade_server.py PORT DIRECTORY
"""
import os
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events

ROOT = sys.argv[2]


def respond(conn, sock, stream_id, headers, body):
    method = headers.get(":method", "GET")
    path = headers.get(":path", "/").split("?")[0]
    if method == "POST":
        status, data = "200", body
    else:
        file = os.path.join(ROOT, path.lstrip("/"))
        if os.path.isfile(file):
            status, data = "200", open(file, "rb").read()
        else:
            status, data = "404", b"not found\n"
    conn.send_headers(stream_id, [(":status", status), ("content-length", str(len(data))),
                                  ("content-type", "application/octet-stream")])
    # DATA in pieces the peer's window allows, then the trailer.
    offset = 0
    while offset < len(data):
        window = conn.local_flow_control_window(stream_id)
        chunk = min(window, conn.max_outbound_frame_size, len(data) - offset)
        if chunk <= 0:
            sock.sendall(conn.data_to_send())
            wait_for_window(conn, sock, stream_id)
            continue
        conn.send_data(stream_id, data[offset:offset + chunk])
        offset += chunk
    # The trailers leave in the same write as the last DATA: curl resets a stream whose
    # content-length is complete (RST_STREAM STREAM_CLOSED) if they come later.
    conn.send_headers(stream_id, [("x-served-by", "h2c-upgrade-server")], end_stream=True)
    sock.sendall(conn.data_to_send())


def wait_for_window(conn, sock, stream_id):
    while conn.local_flow_control_window(stream_id) <= 0:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        sock.sendall(conn.data_to_send())


def serve(sock):
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(65536)
        if not chunk:
            return
        request += chunk
    head, rest = request.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    length = int(fields.get("content-length", "0"))
    while len(rest) < length:
        rest += sock.recv(65536)
    body, rest = rest[:length], rest[length:]
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
    if fields.get("upgrade", "").lower() != "h2c":
        sock.sendall(b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: h2c\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    conn.initiate_upgrade_connection(fields.get("http2-settings", ""))
    sock.sendall(conn.data_to_send())
    # The upgrade request is stream 1, half-closed from the client.
    respond(conn, sock, 1, {":method": method, ":path": target}, body)
    streams = {}
    data = rest
    while True:
        for event in conn.receive_data(data) if data else []:
            if isinstance(event, h2.events.RequestReceived):
                streams[event.stream_id] = (dict((k.decode(), v.decode()) for k, v in event.headers), bytearray())
                if event.stream_ended:
                    respond(conn, sock, event.stream_id, streams[event.stream_id][0], b"")
            elif isinstance(event, h2.events.DataReceived):
                streams[event.stream_id][1].extend(event.data)
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                headers, payload = streams[event.stream_id]
                if event.stream_id != 1:
                    respond(conn, sock, event.stream_id, headers, bytes(payload))
            elif isinstance(event, h2.events.ConnectionTerminated):
                return
        sock.sendall(conn.data_to_send())
        data = sock.recv(65536)
        if not data:
            return


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(16)
    print("listening", flush=True)
    while True:
        sock, _ = listener.accept()

        def run(s=sock):
            try:
                serve(s)
            except (ConnectionError, OSError):
                pass
            finally:
                s.close()
        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    main()
