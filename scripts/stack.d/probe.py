#!/usr/bin/env python3
"""Readiness probes for scripts/stack that speak the real wire protocols (stdlib only).

  probe.py kafka HOST:PORT   Kafka Metadata v4 request: ready when at least one broker is listed
                             and a controller is known. Prints "brokers=N controller=ID cluster=ID".
  probe.py cql HOST:PORT     CQL native protocol v4: STARTUP -> READY, then
                             QUERY "SELECT release_version FROM system.local" -> ROWS. Prints the version.

Exit 0 when ready, 1 otherwise (reason on stderr). Each probe gives up after a few seconds.
"""
import socket
import struct
import sys

TIMEOUT = 3.0


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals[0] if len(vals) == 1 else vals

    def raw(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def kstring(self):  # Kafka/CQL [string]: int16 length (-1 = null) + UTF-8
        n = self.take(">h")
        return None if n < 0 else self.raw(n).decode()


def probe_kafka(addr):
    host, port = split_addr(addr)
    client_id = b"interchange-stack-probe"
    # Request header v1 + Metadata v4 body (v0-v3 were removed in Kafka 4.0, KIP-896).
    header = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body = struct.pack(">ib", -1, 0)  # topics = null (all topics), allow_auto_topic_creation = false
    req = header + body
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        r = Reader(recv_exact(sock, size))
    if r.take(">i") != 1:
        raise ValueError("correlation id mismatch")
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node_id = r.take(">i")
        bhost = r.kstring()
        bport = r.take(">i")
        r.kstring()  # rack
        brokers.append("%d@%s:%d" % (node_id, bhost, bport))
    cluster_id = r.kstring()
    controller = r.take(">i")
    if not brokers or controller < 0:
        raise ValueError("no live broker/controller yet (brokers=%s controller=%d)" % (brokers, controller))
    print("brokers=%s controller=%d cluster=%s" % (",".join(brokers), controller, cluster_id))


def cql_frame(opcode, body, stream=1):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def cql_read(sock):
    version, _flags, _stream, opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    if version != 0x84:
        raise ValueError("unexpected CQL response version 0x%02x" % version)
    body = recv_exact(sock, length)
    if opcode == 0x00:  # ERROR: [int code][string message]
        r = Reader(body)
        code = r.take(">i")
        raise ValueError("CQL error 0x%04x: %s" % (code, r.kstring()))
    return opcode, body


def probe_cql(addr):
    host, port = split_addr(addr)
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        # STARTUP with the string map {CQL_VERSION: 3.0.0}
        k, v = b"CQL_VERSION", b"3.0.0"
        startup = struct.pack(">hh", 1, len(k)) + k + struct.pack(">h", len(v)) + v
        sock.sendall(cql_frame(0x01, startup))
        opcode, _ = cql_read(sock)
        if opcode != 0x02:
            raise ValueError("expected READY (0x02) after STARTUP, got 0x%02x" % opcode)
        # QUERY: [long string][consistency ONE][flags 0]
        q = b"SELECT release_version FROM system.local"
        sock.sendall(cql_frame(0x07, struct.pack(">i", len(q)) + q + struct.pack(">hB", 0x0001, 0), stream=2))
        opcode, body = cql_read(sock)
    if opcode != 0x08:
        raise ValueError("expected RESULT (0x08), got 0x%02x" % opcode)
    r = Reader(body)
    if r.take(">i") != 0x0002:
        raise ValueError("expected a Rows result")
    flags, ncols = r.take(">ii")
    if flags & 0x0002:  # has_more_pages: paging state
        r.raw(r.take(">i"))
    if flags & 0x0001:  # global_tables_spec
        r.kstring(), r.kstring()
    for _ in range(ncols):
        if not flags & 0x0001:
            r.kstring(), r.kstring()
        r.kstring()  # column name
        if r.take(">h") != 0x000D:  # varchar, no type parameters
            raise ValueError("unexpected column type")
    if r.take(">i") < 1:
        raise ValueError("system.local returned no row")
    n = r.take(">i")
    print("release_version=%s" % r.raw(n).decode())


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("kafka", "cql"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        (probe_kafka if sys.argv[1] == "kafka" else probe_cql)(sys.argv[2])
    except (OSError, ValueError, struct.error) as e:
        print("%s %s not ready: %s" % (sys.argv[1], sys.argv[2], e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
