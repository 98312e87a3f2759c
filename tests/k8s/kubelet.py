#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A kubelet stand-in for gpuvirt-device-plugin's tests: Debian's python3-grpcio, run with /usr/bin/python3.

It serves Registration on kubelet.sock in the device-plugins directory of a simulated host and drives each
plugin that registers as kubelet's device manager does: GetDevicePluginOptions, one ListAndWatch stream per
resource kept open, GetPreferredAllocation and Allocate. The messages are encoded and decoded here by hand from
the API's field numbers, independently of the plugin's .proto and of protobuf-c, so the test also proves the
wire format.
"""

import os
import queue
import threading
import time
from concurrent import futures

import grpc

API = "v1beta1"


# --- protobuf wire format (proto3: varints and length-delimited fields are all the API uses) -------------
def _varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """One field: int/bool as a varint, str/bytes as length-delimited (a nested message is its bytes)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def decode(data):
    """bytes -> {field number: [values]}: ints for varints, bytes for length-delimited fields."""
    out = {}
    i = 0

    def varint():
        nonlocal i
        shift = n = 0
        while True:
            if i >= len(data):
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            v = varint()
        elif wire == 2:
            n = varint()
            v = bytes(data[i:i + n])
            if len(v) != n:
                raise ValueError("truncated field")
            i += n
        else:
            raise ValueError("unexpected wire type %d" % wire)
        out.setdefault(num, []).append(v)
    return out


def _str(d, num):
    return d.get(num, [b""])[-1].decode()


def decode_register(data):
    d = decode(data)
    opts = decode(d.get(4, [b""])[-1])
    return {"version": _str(d, 1), "endpoint": _str(d, 2), "resource": _str(d, 3),
            "preferred": bool(opts.get(2, [0])[-1])}


def decode_list(data):
    devices = []
    for raw in decode(data).get(1, []):
        d = decode(raw)
        numa = [decode(n).get(1, [0])[-1] for n in decode(d.get(3, [b""])[-1]).get(1, [])]
        devices.append({"id": _str(d, 1), "health": _str(d, 2), "numa": numa})
    return devices


def decode_options(data):
    d = decode(data)
    return {"pre_start_required": bool(d.get(1, [0])[-1]), "preferred": bool(d.get(2, [0])[-1])}


def encode_allocate(containers):
    return b"".join(field(1, b"".join(field(1, i) for i in ids)) for ids in containers)


def decode_allocate(data):
    out = []
    for raw in decode(data).get(1, []):
        c = decode(raw)
        envs = {}
        for e in c.get(1, []):
            kv = decode(e)
            envs[_str(kv, 1)] = _str(kv, 2)
        devices = []
        for s in c.get(3, []):
            ds = decode(s)
            devices.append({"container_path": _str(ds, 1), "host_path": _str(ds, 2), "permissions": _str(ds, 3)})
        cdi = [_str(decode(x), 1) for x in c.get(5, [])]
        out.append({"envs": envs, "devices": devices, "cdi": cdi})
    return out


def encode_preferred(available, must, size):
    c = b"".join(field(1, i) for i in available) + b"".join(field(2, i) for i in must) + field(3, size)
    return field(1, c)


def decode_preferred(data):
    return [[x.decode() for x in decode(raw).get(1, [])] for raw in decode(data).get(1, [])]


def _ident(b):
    return b


# --- the stand-in ----------------------------------------------------------------------------------------
class Plugin:
    """A registered plugin as the device manager sees it: its channel and the lists its stream delivered."""

    def __init__(self, directory, reg):
        self.resource = reg["resource"]
        self.endpoint = reg["endpoint"]
        self.registration = reg
        self.channel = grpc.insecure_channel("unix:" + os.path.join(directory, reg["endpoint"]))
        self.lists = queue.Queue()
        self.latest = None
        self.stream = None
        self.stream_error = None

    def call(self, method, request, timeout=5):
        f = self.channel.unary_unary("/%s.DevicePlugin/%s" % (API, method),
                                     request_serializer=_ident, response_deserializer=_ident)
        return f(request, timeout=timeout)

    def options(self):
        return decode_options(self.call("GetDevicePluginOptions", b""))

    def watch(self):
        f = self.channel.unary_stream("/%s.DevicePlugin/ListAndWatch" % API,
                                      request_serializer=_ident, response_deserializer=_ident)
        self.stream = f(b"")

        def reader():
            try:
                for msg in self.stream:
                    self.lists.put(decode_list(msg))
            except grpc.RpcError as e:
                self.stream_error = e
                self.lists.put(None)

        threading.Thread(target=reader, daemon=True).start()

    def next_list(self, timeout=5):
        """The next list the stream delivers (None when the stream ended), or raises queue.Empty."""
        self.latest = self.lists.get(timeout=timeout)
        return self.latest

    def wait_list(self, pred, timeout=5):
        """Lists until one satisfies pred; returns it and the seconds it took, or raises TimeoutError."""
        start = time.monotonic()
        if self.latest is not None and pred(self.latest):
            return self.latest, 0.0
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError("no list satisfying the condition on %s within %ss (last: %s)"
                                   % (self.resource, timeout, self.latest))
            try:
                lst = self.next_list(left)
            except queue.Empty:
                continue
            if lst is None:
                raise TimeoutError("the ListAndWatch stream of %s ended: %s" % (self.resource, self.stream_error))
            if pred(lst):
                return lst, time.monotonic() - start

    def allocate(self, *containers):
        return decode_allocate(self.call("Allocate", encode_allocate(containers)))

    def preferred(self, available, must, size):
        return decode_preferred(self.call("GetPreferredAllocation", encode_preferred(available, must, size)))

    def close(self):
        if self.stream is not None:
            self.stream.cancel()
        self.channel.close()


class Kubelet:
    """Serves Registration on DIR/kubelet.sock; every registration gets a Plugin with its stream open."""

    def __init__(self, directory):
        self.dir = directory
        self.plugins = {}
        self.registrations = queue.Queue()
        self.refuse = None  # a resource name whose registration is refused (kubelet's answer to a bad one)
        self.server = None

    def _register(self, request, context):
        reg = decode_register(request)
        if reg["version"] != API:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported version %r" % reg["version"])
        if self.refuse and reg["resource"] == self.refuse:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "refused by the test")
        self.registrations.put(reg)
        return b""

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        path = os.path.join(self.dir, "kubelet.sock")
        if os.path.exists(path):
            os.unlink(path)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler("%s.Registration" % API, {
            "Register": grpc.unary_unary_rpc_method_handler(self._register, request_deserializer=_ident,
                                                            response_serializer=_ident)})
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("unix:" + path)
        self.server.start()

    def stop(self, clean_sockets=True):
        """kubelet going away; as the device manager does on start, the plugins' sockets are removed."""
        for p in self.plugins.values():
            p.close()
        self.plugins = {}
        if self.server:
            self.server.stop(None).wait()
            self.server = None
        if clean_sockets:
            for name in os.listdir(self.dir):
                if name.endswith(".sock"):
                    os.unlink(os.path.join(self.dir, name))

    def accept(self, want, timeout=10):
        """Take registrations until every resource in want has registered; connect and watch each."""
        want = set(want)
        deadline = time.monotonic() + timeout
        while not want <= set(self.plugins):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("registered: %s; wanted: %s" % (sorted(self.plugins), sorted(want)))
            try:
                reg = self.registrations.get(timeout=left)
            except queue.Empty:
                continue
            if reg["resource"] in self.plugins:
                self.plugins[reg["resource"]].close()
            p = Plugin(self.dir, reg)
            p.options_seen = p.options()
            p.watch()
            self.plugins[reg["resource"]] = p
        return self.plugins
