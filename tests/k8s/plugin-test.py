#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gpuvirt-device-plugin against the kubelet stand-in (kubelet.py) on simulated hosts.

Usage: plugin-test.py GPUVIRT PLUGIN [SCENARIO...]
Each scenario creates a simulated host, starts the plugin on it (no restart during the scenario, ever), acts
as kubelet and changes the host with gpuvirt itself. Expected values come from the host (sysfs links under
the root, gpuvirt's --json of NVML and mdevs), never from the plugin. Ends with "N passed, N failed".
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubelet  # noqa: E402

GPUVIRT, PLUGIN = sys.argv[1], sys.argv[2]
GPUVIRTD = os.environ.get("GPUVIRTD")  # the gpuvirtd-health scenario runs the real daemon when given
ONLY = sys.argv[3:]
PASSED = FAILED = 0
MIG_CONFIG = """version: v1
mig-configs:
  mixed:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "3g.20gb": 1
    - devices: [2, 3, 4, 5, 6, 7]
      mig-enabled: false
  all-1g:
    - devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 7
"""


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("ok   %s" % name)
    else:
        FAILED += 1
        print("FAIL %s %s" % (name, detail))
    sys.stdout.flush()
    return ok


def expect_rpc_error(name, fn, code, text):
    try:
        r = fn()
    except grpc.RpcError as e:
        return check(name, e.code() == code and text in (e.details() or ""),
                     "got %s %r" % (e.code(), e.details()))
    return check(name, False, "no error: %r" % (r,))


class Host:
    def __init__(self, profile):
        # short: a unix socket address holds 107 bytes, and the plugins' directory is deep under the root
        self.tmp = tempfile.mkdtemp(prefix="k8s")
        self.root = os.path.join(self.tmp, "h")
        self.gpuvirt("sim", "create", self.root, "--profile", profile, root=False)
        self.dir = os.path.join(self.root, "var/lib/kubelet/device-plugins")
        self.kubelet = kubelet.Kubelet(self.dir)
        self.plugin = None
        self.log = None

    def gpuvirt(self, *args, root=True, check_rc=True):
        cmd = [GPUVIRT] + (["--root", self.root] if root else []) + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if check_rc and p.returncode != 0:
            raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr))
        return p.stdout

    def gpuvirt_json(self, *args):
        return json.loads(self.gpuvirt("--json", *args))

    def start(self, *args):
        self.log = open(os.path.join(self.tmp, "plugin.log"), "w+")
        self.plugin = subprocess.Popen([PLUGIN, "--root", self.root] + list(args), stdout=self.log,
                                       stderr=subprocess.STDOUT)

    def stop(self):
        """SIGTERM; the plugin must exit 0 (under ASan: nothing leaked)."""
        self.kubelet.stop(clean_sockets=False)
        rc = None
        if self.plugin:
            self.plugin.send_signal(signal.SIGTERM)
            try:
                rc = self.plugin.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.plugin.kill()
                rc = "hung"
        check("plugin exits 0 on SIGTERM (ASan clean)", rc == 0, "rc %s, log:\n%s" % (rc, self.log_text()))

    def log_text(self):
        if not self.log:
            return ""
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def alive(self):
        return self.plugin.poll() is None

    def group_of(self, bdf):
        return os.path.basename(os.readlink(os.path.join(self.root, "sys/bus/pci/devices", bdf, "iommu_group")))

    def numa_of(self, bdf):
        with open(os.path.join(self.root, "sys/bus/pci/devices", bdf, "numa_node")) as f:
            return int(f.read())

    def write_health(self, units, version=1, raw=None):
        d = os.path.join(self.root, "run/gpuvirt")
        os.makedirs(d, mode=0o700, exist_ok=True)
        tmp = os.path.join(d, ".health.json.tmp")
        with open(tmp, "w") as f:
            f.write(raw if raw is not None else json.dumps({"version": version, "units": units}))
        os.rename(tmp, os.path.join(d, "health.json"))  # atomically, as the daemon writes it

    def cleanup(self):
        if self.log:
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def ids(lst):
    return sorted(d["id"] for d in lst)


def mig_uuids(host):
    """profile -> [(gpu bdf, MIG UUID)], from gpuvirt's view of NVML"""
    out = {}
    for g in host.gpuvirt_json("mig", "status"):
        for i in g.get("instances", []):
            out.setdefault(i["profile"], []).append((g["address"], i["uuid"]))
    return out


def scenario_dgx_mixed():
    h = Host("dgx-a100")
    try:
        cfg = os.path.join(h.tmp, "mig.yaml")
        with open(cfg, "w") as f:
            f.write(MIG_CONFIG)
        h.gpuvirt("mig", "apply", "-f", cfg, "-c", "mixed")
        # NVLink (the fake NVML's files): node 1's four whole GPUs (NVML index 2-7 are whole) in two pairs across
        # address order: (a, c) bridged to each other, (b, d) each linked to one NVSwitch (not a GPU)
        nv = sorted(g["address"] for g in h.gpuvirt_json("list") if g.get("driver") == "nvidia")[2:]
        w1 = [g for g in nv if h.numa_of(g) == 1]
        links = {w1[0]: [w1[2]], w1[2]: [w1[0]], w1[1]: ["0000:c0:00.0"], w1[3]: ["0000:c0:00.0"]}
        for g, far in links.items():
            with open(os.path.join(h.root, ".gpuvirt-sim/nvml", g + ".nvlink"), "w") as f:
                f.write("".join("%d %s\n" % (i, a) for i, a in enumerate(far)))
        h.kubelet.start()
        h.start()
        pl = h.kubelet.accept(["nvidia.com/gpu", "nvidia.com/mig-1g.5gb", "nvidia.com/mig-3g.20gb"])
        gpu, small, big = pl["nvidia.com/gpu"], pl["nvidia.com/mig-1g.5gb"], pl["nvidia.com/mig-3g.20gb"]
        check("registration: version v1beta1 and a socket of its own in the directory",
              all(p.registration["version"] == "v1beta1" and os.path.exists(os.path.join(h.dir, p.endpoint))
                  for p in pl.values()) and len({p.endpoint for p in pl.values()}) == 3)
        check("GetDevicePluginOptions: no PreStartContainer, GetPreferredAllocation offered (and in Register)",
              not gpu.options_seen["pre_start_required"] and gpu.options_seen["preferred"] and
              gpu.registration["preferred"])
        status = h.gpuvirt_json("mig", "status")
        whole = sorted(g["uuid"] for g in status if not g.get("instances"))
        migs = mig_uuids(h)
        lg, _ = gpu.wait_list(lambda l: len(l) > 0)
        check("nvidia.com/gpu lists the 6 GPUs not in MIG mode by UUID", ids(lg) == whole, "%s vs %s" % (ids(lg), whole))
        ls, _ = small.wait_list(lambda l: len(l) > 0)
        check("nvidia.com/mig-1g.5gb lists the 4 1g.5gb MIG devices", ids(ls) == sorted(u for _, u in migs["1g.5gb"]),
              str(ls))
        lb, _ = big.wait_list(lambda l: len(l) > 0)
        check("nvidia.com/mig-3g.20gb lists the 2 3g.20gb MIG devices",
              ids(lb) == sorted(u for _, u in migs["3g.20gb"]), str(lb))
        addr = {g["uuid"]: g["address"] for g in status}
        check("topology: each GPU's NUMA node from sysfs",
              all(d["numa"] == [h.numa_of(addr[d["id"]])] for d in lg), str(lg))
        check("every device Healthy", all(d["health"] == "Healthy" for d in lg + ls + lb))

        a = gpu.allocate(whole[:2])
        check("Allocate nvidia.com/gpu: NVIDIA_VISIBLE_DEVICES has the two UUIDs",
              len(a) == 1 and a[0]["envs"].get("NVIDIA_VISIBLE_DEVICES") == ",".join(whole[:2]), str(a))
        # device nodes as NVIDIA's plugin passes them: the driver's minors read here from its proc files
        def minor(bdf):
            with open(os.path.join(h.root, "proc/driver/nvidia/gpus", bdf, "information")) as f:
                return int(f.read().split("Device Minor:")[1].split()[0])

        with open(os.path.join(h.root, "proc/driver/nvidia-caps/mig-minors")) as f:
            caps = dict(line.split() for line in f if line.strip())
        control = ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]
        want = control + ["/dev/nvidia%d" % minor(addr[u]) for u in whole[:2]]
        check("Allocate nvidia.com/gpu: the control nodes and each GPU's /dev/nvidia<minor>, all on the host",
              [d["host_path"] for d in a[0]["devices"]] == want and
              all(d["container_path"] == d["host_path"] and os.path.exists(h.root + d["host_path"])
                  for d in a[0]["devices"]), "%s vs %s" % (a[0]["devices"], want))
        inst = {i["uuid"]: (g["address"], i["gi_id"], i["ci_id"]) for g in status for i in g.get("instances", [])}
        one = migs["1g.5gb"][0][1]
        bdf, gi, ci = inst[one]
        m = minor(bdf)
        # nvidia-modeset where the host has it (nvidia-modeset.ko loaded), as NVIDIA's plugin passes it
        open(os.path.join(h.root, "dev/nvidia-modeset"), "w").close()
        control = control + ["/dev/nvidia-modeset"]
        want = control + ["/dev/nvidia%d" % m, "/dev/nvidia-caps/nvidia-cap" + caps["gpu%d/gi%d/access" % (m, gi)],
                          "/dev/nvidia-caps/nvidia-cap" + caps["gpu%d/gi%d/ci%d/access" % (m, gi, ci)]]
        a = small.allocate([one])
        check("Allocate of a MIG device: its GPU's node and the capability nodes of its GPU and compute instance "
              "(mig-minors)", [d["host_path"] for d in a[0]["devices"]] == want and
              all(os.path.exists(h.root + d["host_path"]) for d in a[0]["devices"]),
              "%s vs %s" % (a[0]["devices"], want))
        a = small.allocate([one], [migs["1g.5gb"][1][1]])
        check("Allocate of two containers of nvidia.com/mig-1g.5gb: one MIG UUID each",
              [c["envs"].get("NVIDIA_VISIBLE_DEVICES") for c in a] == [one, migs["1g.5gb"][1][1]], str(a))

        C = grpc.StatusCode.INVALID_ARGUMENT
        expect_rpc_error("Allocate of an unknown ID: INVALID_ARGUMENT", lambda: gpu.allocate(["GPU-nope"]), C,
                         "unknown device ID GPU-nope")
        expect_rpc_error("Allocate of another resource's ID: INVALID_ARGUMENT naming it",
                         lambda: gpu.allocate([one]), C, "nvidia.com/mig-1g.5gb")
        expect_rpc_error("Allocate of more devices than the resource has: INVALID_ARGUMENT",
                         lambda: big.allocate(ids(lb) + [one]), C, "3 devices requested")
        expect_rpc_error("Allocate of one ID twice: INVALID_ARGUMENT", lambda: gpu.allocate([whole[0], whole[0]]), C,
                         "twice")
        expect_rpc_error("Allocate with a malformed message: INVALID_ARGUMENT",
                         lambda: gpu.call("Allocate", b"\x0a\x05ab"), C, "malformed")
        expect_rpc_error("an unknown method: UNIMPLEMENTED", lambda: gpu.call("Frobnicate", b""),
                         grpc.StatusCode.UNIMPLEMENTED, "")
        a = gpu.allocate([whole[2]])
        check("after the bad requests the plugin still serves", h.alive() and
              a[0]["envs"].get("NVIDIA_VISIBLE_DEVICES") == whole[2])

        # GetPreferredAllocation: NUMA nodes from sysfs, MIG packing by what is not available
        node = {u: h.numa_of(addr[u]) for u in whole}
        n0 = sorted(u for u in whole if node[u] == 0)
        n1 = sorted(u for u in whole if node[u] == 1)
        check("dgx-a100 mixed: 2 whole GPUs on node 0, 4 on node 1", len(n0) == 2 and len(n1) == 4, str(node))
        pr = gpu.preferred(whole, [], 2)
        check("preferred 2 of 6: the node whose GPUs fit it most tightly (node 0's two)", [sorted(pr[0])] == [n0], str(pr))
        pr = gpu.preferred(whole, [], 3)
        check("preferred 3 of 6: three on node 1, the one node that holds them", len(pr[0]) == 3 and
              all(node[u] == 1 for u in pr[0]), str(pr))
        pr = gpu.preferred(whole, [n1[2]], 2)
        check("preferred with a must-include ID: it, and one more on its node",
              pr[0][0] == n1[2] and len(pr[0]) == 2 and node[pr[0][1]] == 1, str(pr))
        pr = gpu.preferred(whole, [], 5)
        check("preferred 5 (no node holds them): node 1's four and one of node 0",
              sorted(node[u] for u in pr[0]) == [0, 1, 1, 1, 1], str(pr))
        # NVLink domains on the node: a pair joined by NVLink, not the first two by address
        uuid_of = {addr[u]: u for u in whole}
        pairs = [{uuid_of[w1[0]], uuid_of[w1[2]]}, {uuid_of[w1[1]], uuid_of[w1[3]]}]
        pr = gpu.preferred(n1, [], 2)
        check("preferred 2 of node 1's four: an NVLink pair (a, c) or (b, d), not a and b", set(pr[0]) in pairs,
              "%s, pairs %s" % (pr, pairs))
        pr = gpu.preferred(n1, [uuid_of[w1[1]]], 2)
        check("preferred with a must-include ID: it and its NVLink partner (through the NVSwitch)",
              pr[0] == [uuid_of[w1[1]], uuid_of[w1[3]]], str(pr))
        pr = gpu.preferred(n1, [], 3)
        check("preferred 3 of node 1's four: a whole NVLink pair and one more", len(pr[0]) == 3 and
              any(p <= set(pr[0]) for p in pairs), str(pr))
        by_gpu = {}
        for g, u in migs["1g.5gb"]:
            by_gpu.setdefault(g, []).append(u)
        g_busy = sorted(by_gpu)[1]
        taken = sorted(by_gpu[g_busy])[0]
        avail = [u for _, u in migs["1g.5gb"] if u != taken]
        pr = small.preferred(avail, [], 1)
        check("preferred MIG device: on the GPU that already has one allocated (packing)",
              pr[0][0] in by_gpu[g_busy], "%s, busy GPU %s" % (pr, g_busy))
        expect_rpc_error("preferred size above what is available: INVALID_ARGUMENT",
                         lambda: gpu.preferred(whole[:2], [], 3), C, "allocation size 3")
        expect_rpc_error("preferred with an unknown available ID: INVALID_ARGUMENT",
                         lambda: gpu.preferred(whole + ["GPU-x"], [], 1), C, "unknown device ID GPU-x")
        expect_rpc_error("preferred with a must-include ID that is not available: INVALID_ARGUMENT",
                         lambda: gpu.preferred(whole[1:], [whole[0]], 1), C, "not available")

        # health from gpuvirtd's state file: unhealthy, then recovered, on the open streams
        bad_gpu = addr[whole[0]]
        h.write_health([{"unit": bad_gpu, "gpu": bad_gpu, "health": "unhealthy", "reason": "Xid 48",
                         "since": "2026-12-01T15:22:30Z"},
                        {"unit": one, "gpu": migs["1g.5gb"][0][0], "health": "gone", "reason": "lost",
                         "since": "2026-12-01T15:22:31Z"},
                        {"unit": whole[1], "gpu": addr[whole[1]], "health": "degraded", "reason": "throttled",
                         "since": "2026-12-01T15:22:32Z"}])
        l, t1 = gpu.wait_list(lambda l: {d["id"]: d["health"] for d in l}.get(whole[0]) == "Unhealthy")
        check("health unhealthy (by PCI address) reaches nvidia.com/gpu's stream within 1 s", t1 < 1.0, "%.3fs" % t1)
        check("a degraded unit stays Healthy, the others too",
              all(d["health"] == "Healthy" for d in l if d["id"] != whole[0]), str(l))
        l, t2 = small.wait_list(lambda l: {d["id"]: d["health"] for d in l}.get(one) == "Unhealthy")
        check("health gone (by MIG UUID) reaches nvidia.com/mig-1g.5gb's stream", t2 < 1.0, "%.3fs" % t2)
        h.write_health([{"unit": bad_gpu, "gpu": bad_gpu, "health": "healthy", "reason": None,
                         "since": "2026-12-01T15:30:00Z"}])
        l, t3 = gpu.wait_list(lambda l: all(d["health"] == "Healthy" for d in l))
        check("recovery: the GPU is Healthy again on the same stream within 1 s", t3 < 1.0, "%.3fs" % t3)
        small.wait_list(lambda l: all(d["health"] == "Healthy" for d in l))
        h.write_health(None, raw='{"version":1,"units":[{"unit":"x"')
        h.write_health(None, raw='{"version":2,"units":[]}')
        time.sleep(0.5)
        check("a damaged health file or another version is ignored with a warning, the plugin serves on",
              h.alive() and "Ignoring the health file" in h.log_text() and
              gpu.allocate([whole[3]])[0]["envs"]["NVIDIA_VISIBLE_DEVICES"] == whole[3])
        os.unlink(os.path.join(h.root, "run/gpuvirt/health.json"))

        # a MIG reconfiguration by gpuvirt mig apply while the plugin runs
        h.gpuvirt("mig", "apply", "-f", cfg, "-c", "all-1g")
        t0 = time.monotonic()
        l, _ = small.wait_list(lambda l: len(l) == 56)
        t4 = time.monotonic() - t0
        migs = mig_uuids(h)
        check("after mig apply the new layout is on nvidia.com/mig-1g.5gb's stream within 1 s (no restart)",
              t4 < 1.0 and ids(l) == sorted(u for _, u in migs["1g.5gb"]), "%.3fs" % t4)
        l, _ = gpu.wait_list(lambda l: len(l) == 0)
        check("nvidia.com/gpu is empty (every GPU in MIG mode)", l == [])
        l, _ = big.wait_list(lambda l: len(l) == 0)
        check("nvidia.com/mig-3g.20gb is empty", l == [])
        expect_rpc_error("Allocate of a MIG device that is gone: INVALID_ARGUMENT",
                         lambda: small.allocate([ids(lb)[0]]), C, "unknown device ID " + ids(lb)[0])
        expect_rpc_error("Allocate of a resource left without devices: INVALID_ARGUMENT",
                         lambda: big.allocate([ids(lb)[0]]), C, "which has 0")

        # kubelet restart: it removes the plugins' sockets and creates kubelet.sock again
        pid = h.plugin.pid
        h.kubelet.stop(clean_sockets=True)
        time.sleep(0.3)
        h.kubelet.start()
        pl = h.kubelet.accept(["nvidia.com/gpu", "nvidia.com/mig-1g.5gb", "nvidia.com/mig-3g.20gb"])
        l, _ = pl["nvidia.com/mig-1g.5gb"].wait_list(lambda l: len(l) == 56)
        check("kubelet restart: every resource registers again on a new socket, same process",
              h.plugin.pid == pid and h.alive() and len(l) == 56)

        # a MIG GPU off the bus: NVML refuses its handle, has no UUIDs for it; its MIG devices stay, Unhealthy
        lost = migs["1g.5gb"][0][0]
        on_lost = sorted(u for g, u in migs["1g.5gb"] if g == lost)
        h.gpuvirt("sim", "off-bus", lost)
        l2, t = pl["nvidia.com/mig-1g.5gb"].wait_list(
            lambda l: sorted(d["id"] for d in l if d["health"] == "Unhealthy") == on_lost, timeout=3)
        check("a MIG GPU off the bus: its 7 MIG devices stay with their UUIDs, Unhealthy, the others Healthy "
              "(%.2fs)" % t, len(on_lost) == 7 and ids(l2) == ids(l), str(l2))
    finally:
        h.stop()
        h.cleanup()


DYNAMIC_CONFIG = """version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  mixed:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.5gb": 2
        "3g.20gb": 1
    - devices: [2, 3, 4, 5, 6, 7]
      mig-enabled: false
  all-1g:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "1g.5gb": 7
    - devices: [2, 3, 4, 5, 6, 7]
      mig-enabled: false
  whole:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "7g.40gb": 1
    - devices: [2, 3, 4, 5, 6, 7]
      mig-enabled: false
  four:
    - devices: [0, 1]
      mig-enabled: true
      mig-devices:
        "4g.20gb": 1
        "2g.10gb": 1
        "1g.5gb": 1
    - devices: [2, 3, 4, 5, 6, 7]
      mig-enabled: false
  gpu7:
    - devices: [7]
      mig-enabled: true
      mig-devices:
        "3g.20gb": 2
"""


def scenario_dgx_dynamic():
    h = Host("dgx-a100")
    try:
        os.makedirs(os.path.join(h.root, "etc/gpuvirt"), exist_ok=True)
        os.makedirs(os.path.join(h.root, "etc/podinfo"), exist_ok=True)
        with open(os.path.join(h.root, "etc/gpuvirt/mig.yaml"), "w") as f:
            f.write(DYNAMIC_CONFIG)
        state_file = os.path.join(h.root, "run/gpuvirt/k8s-mig-config.json")

        def label(value, raw=None):
            tmp = os.path.join(h.root, "etc/podinfo/.labels.tmp")
            with open(tmp, "w") as f:
                f.write(raw if raw is not None else 'kubernetes.io/hostname="dgx"\nnvidia.com/mig.config="%s"\n' % value)
            os.rename(tmp, os.path.join(h.root, "etc/podinfo/labels"))

        def state(want_label, timeout=10):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                try:
                    with open(state_file) as f:
                        st = json.load(f)
                    if st["label"] == want_label:
                        return st
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
            return None

        def layout():
            return sorted((g["address"], i["uuid"], i["placement"]["start"]) for g in h.gpuvirt_json("mig", "status")
                          for i in g.get("instances", []))

        h.kubelet.start()
        h.start("--mig-config", "etc/gpuvirt/mig.yaml", "--node-labels", "etc/podinfo/labels")
        gpu = h.kubelet.accept(["nvidia.com/gpu"])["nvidia.com/gpu"]
        gpu.wait_list(lambda l: len(l) == 8)
        label("mixed")
        st = state("mixed")
        check("label nvidia.com/mig.config=mixed: applied (state file)", st and st["state"] == "applied", str(st))
        pl = h.kubelet.accept(["nvidia.com/mig-1g.5gb", "nvidia.com/mig-3g.20gb"])
        small = pl["nvidia.com/mig-1g.5gb"]
        l, _ = small.wait_list(lambda l: len(l) == 4)
        gpu.wait_list(lambda l: len(l) == 6)
        check("...and its MIG devices advertised, the whole GPUs left 6", len(l) == 4)
        x = ids(l)[0]
        small.allocate([x])
        before = layout()
        x_at = [e for e in before if e[1] == x]
        label("whole")
        st = state("whole")
        check("a configuration without the allocated device's profile: refused",
              st and st["state"] == "refused" and "fewer devices of a profile than are allocated: 1g.5gb" in
              (st["reason"] or ""), str(st))
        check("(the allocated 1g.5gb device lies in slices 0-3, where 4g.20gb must go)", x_at and x_at[0][2] < 4,
              str(x_at))
        label("four")
        st = state("four")
        check("a layout that cannot keep the allocated MIG device where it is: refused",
              st and st["state"] == "refused" and "cannot keep" in (st["reason"] or ""), str(st))
        label("all-disabled")
        st = state("all-disabled")
        check("MIG disabled under an allocated MIG device: refused, naming it",
              st and st["state"] == "refused" and x in (st["reason"] or ""), str(st))
        check("...and nothing changed on any GPU", layout() == before)
        label("all-1g")
        st = state("all-1g")
        check("7 x 1g.5gb per GPU: applied around the allocated device", st and st["state"] == "applied", str(st))
        l, t = small.wait_list(lambda l: len(l) == 14)
        check("...the allocated MIG device kept with its UUID and placement, 14 advertised",
              x in ids(l) and [e for e in layout() if e[1] == x] == x_at, str(x_at))
        addr = {g["uuid"]: g["address"] for g in h.gpuvirt_json("mig", "status")}
        c4 = [u for u, a in addr.items() if a == "0000:c4:00.0"][0]
        gpu.allocate([c4])
        label("gpu7")
        st = state("gpu7")
        check("MIG on a whole GPU allocated to a pod (GPU 7, 0000:c4:00.0): refused, naming its UUID",
              st and st["state"] == "refused" and c4 in (st["reason"] or ""), str(st))
        # kubelet's checkpoint is the authority when present: an empty one frees everything
        with open(os.path.join(h.dir, "kubelet_internal_checkpoint"), "w") as f:
            json.dump({"Data": {"PodDeviceEntries": [], "RegisteredDevices": {}}, "Checksum": 0}, f)
        label("all-disabled")
        st = state("all-disabled")
        check("with an empty kubelet checkpoint nothing is allocated: MIG disabled everywhere",
              st and st["state"] == "applied", str(st))
        l, _ = small.wait_list(lambda l: len(l) == 0)
        l, _ = gpu.wait_list(lambda l: len(l) == 8)
        check("...and the 8 whole GPUs advertised again", len(l) == 8)
        with open(os.path.join(h.dir, "kubelet_internal_checkpoint"), "w") as f:
            json.dump({"Data": {"PodDeviceEntries": [{"PodUID": "p", "ContainerName": "c",
                                                      "ResourceName": "nvidia.com/gpu",
                                                      "DeviceIDs": {"1": [ids(l)[0]]}}],
                                "RegisteredDevices": {}}, "Checksum": 0}, f)
        label("mixed")
        st = state("mixed")
        in_mixed = addr.get(ids(l)[0]) in ("0000:23:00.0", "0000:24:00.0")
        check("a whole GPU in the checkpoint (DeviceIDs by NUMA node) is held like an allocation",
              st and st["state"] == ("refused" if in_mixed else "applied"), "%s %s" % (st, addr.get(ids(l)[0])))
        label(None, raw='nvidia.com/mig.config=all-1g\n')
        time.sleep(0.5)
        check("a malformed labels file: a warning naming FILE:LINE:COL, nothing applied",
              "labels:1:" in h.log_text() and state("mixed", 1) is not None)
    finally:
        h.stop()
        h.cleanup()


def scenario_gpuvirtd_health():
    if not GPUVIRTD:
        print("skip gpuvirtd-health: GPUVIRTD not set")
        return
    import socket
    h = Host("dgx-a100")
    daemon = None
    try:
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            port = so.getsockname()[1]
        dlog = open(os.path.join(h.tmp, "gpuvirtd.log"), "w")
        daemon = subprocess.Popen([GPUVIRTD, "--root", h.root, "--listen", "127.0.0.1:%d" % port, "--interval", "0.2",
                                   "--clean-period", "3"], stdout=dlog, stderr=subprocess.STDOUT)
        hf = os.path.join(h.root, "run/gpuvirt/health.json")
        end = time.monotonic() + 20
        while not os.path.exists(hf) and time.monotonic() < end:
            time.sleep(0.1)
        check("gpuvirtd writes its health file", os.path.exists(hf))
        h.kubelet.start()
        h.start()
        gpu = h.kubelet.accept(["nvidia.com/gpu"])["nvidia.com/gpu"]
        l, _ = gpu.wait_list(lambda l: len(l) == 8 and all(d["health"] == "Healthy" for d in l))
        uuid = {g["address"]: g["uuid"] for g in h.gpuvirt_json("mig", "status")}
        bad, app = uuid["0000:23:00.0"], uuid["0000:24:00.0"]
        h.gpuvirt("sim", "xid", "0000:24:00.0", "13")
        h.gpuvirt("sim", "xid", "0000:23:00.0", "48")
        l, t = gpu.wait_list(lambda l: {d["id"]: d["health"] for d in l}.get(bad) == "Unhealthy", timeout=10)
        check("gpuvirtd marks an Xid 48 GPU unhealthy: Unhealthy on the open stream (%.2fs after the Xid)" % t,
              {d["id"]: d["health"] for d in l}.get(app) == "Healthy", str(l))
        l, t = gpu.wait_list(lambda l: all(d["health"] == "Healthy" for d in l), timeout=15)
        check("after gpuvirtd's clean period the GPU is Healthy again on the same stream (%.2fs)" % t, len(l) == 8)
    finally:
        h.stop()
        if daemon:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
        h.cleanup()


def scenario_dgx_single():
    h = Host("dgx-a100")
    try:
        cfg = os.path.join(h.tmp, "mig.yaml")
        with open(cfg, "w") as f:
            f.write(MIG_CONFIG)
        h.gpuvirt("mig", "apply", "-f", cfg, "-c", "all-1g")
        os.makedirs(os.path.join(h.root, "etc/gpuvirt"), exist_ok=True)
        with open(os.path.join(h.root, "etc/gpuvirt/device-plugin.yaml"), "w") as f:
            f.write("# the default configuration file\nmig-strategy: single\n")
        h.kubelet.start()
        h.start()
        gpu = h.kubelet.accept(["nvidia.com/gpu"])["nvidia.com/gpu"]
        migs = mig_uuids(h)
        l, _ = gpu.wait_list(lambda l: len(l) > 0)
        check("single strategy (from etc/gpuvirt/device-plugin.yaml): the 56 uniform 1g.5gb MIG devices are nvidia.com/gpu",
              ids(l) == sorted(u for _, u in migs["1g.5gb"]), "%d devices" % len(l))
        check("single strategy: no nvidia.com/mig-* resource registered",
              not any(r.startswith("nvidia.com/mig-") for r in h.kubelet.plugins))
        a = gpu.allocate(ids(l)[:1])
        check("Allocate: NVIDIA_VISIBLE_DEVICES has the MIG UUID",
              a[0]["envs"].get("NVIDIA_VISIBLE_DEVICES") == ids(l)[0])
        h.gpuvirt("mig", "apply", "-f", cfg, "-c", "mixed")
        status = h.gpuvirt_json("mig", "status")
        whole = sorted(g["uuid"] for g in status if not g.get("instances"))
        l, t = gpu.wait_list(lambda l: ids(l) == whole)
        check("single strategy with two profiles: only the whole GPUs, seen within 1 s", t < 1.0, "%.3fs" % t)
    finally:
        h.stop()
        h.cleanup()


def scenario_cdi():
    h = Host("dgx-a100")
    try:
        cfg = os.path.join(h.tmp, "mig.yaml")
        with open(cfg, "w") as f:
            f.write(MIG_CONFIG)
        h.gpuvirt("mig", "apply", "-f", cfg, "-c", "mixed")
        h.kubelet.start()
        h.start()
        pl = h.kubelet.accept(["nvidia.com/gpu", "nvidia.com/mig-1g.5gb"])
        gpu, small = pl["nvidia.com/gpu"], pl["nvidia.com/mig-1g.5gb"]
        status = h.gpuvirt_json("mig", "status")
        whole = {g["uuid"]: g["index"] for g in status if not g.get("instances")}
        mig = sorted(i["uuid"] for g in status for i in g.get("instances", []) if i["profile"] == "1g.5gb")
        gpu.wait_list(lambda l: len(l) == 6)
        u = sorted(whole)[0]
        check("no CDI spec on the host: no CDI names", gpu.allocate([u])[0]["cdi"] == [])
        # nvidia-ctk's default spec (devices by index, YAML) and one naming MIG devices by UUID (JSON)
        os.makedirs(os.path.join(h.root, "etc/cdi"))
        os.makedirs(os.path.join(h.root, "var/run/cdi"))
        with open(os.path.join(h.root, "etc/cdi/nvidia.yaml"), "w") as f:
            f.write("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n" +
                    "".join('- name: "%d"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/nvidia%d\n' % (i, i)
                            for i in range(8)) + "- name: all\n  containerEdits: {}\ncontainerEdits: {}\n")
        with open(os.path.join(h.root, "var/run/cdi/nvidia-mig.json"), "w") as f:
            json.dump({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
                       "devices": [{"name": m, "containerEdits": {}} for m in mig]}, f)
        with open(os.path.join(h.root, "etc/cdi/broken.yaml"), "w") as f:
            f.write("kind: [\n")
        time.sleep(1.5)  # the periodic rescan reads the specs
        a = gpu.allocate([u])
        check("a GPU named by index in /etc/cdi/nvidia.yaml: its CDI name nvidia.com/gpu=<NVML index>",
              a[0]["cdi"] == ["nvidia.com/gpu=%d" % whole[u]] and a[0]["envs"]["NVIDIA_VISIBLE_DEVICES"] == u, str(a))
        a = small.allocate(mig[:2])
        check("MIG devices named by UUID in /var/run/cdi: their CDI names",
              a[0]["cdi"] == ["nvidia.com/gpu=" + m for m in mig[:2]], str(a))
        check("a CDI spec that does not parse is skipped with a warning naming FILE:LINE:COL",
              "Ignoring the CDI spec" in h.log_text() and "broken.yaml:" in h.log_text())
    finally:
        h.stop()
        h.cleanup()


def scenario_config_file():
    h = Host("workstation")
    try:
        os.makedirs(os.path.join(h.root, "etc/gpuvirt"), exist_ok=True)
        conf = os.path.join(h.root, "etc/gpuvirt/device-plugin.yaml")
        h.kubelet.start()

        def run_bad(text, want_rc, want, *args):
            if text is not None:
                with open(conf, "w") as f:
                    f.write(text)
            p = subprocess.run([PLUGIN, "--root", h.root] + list(args), capture_output=True, text=True, timeout=20)
            socks = [n for n in os.listdir(h.dir) if n != "kubelet.sock"]
            return p.returncode == want_rc and want in p.stderr and not socks, "rc %d: %s %s" % (p.returncode, p.stderr,
                                                                                                   socks)

        ok, why = run_bad("mig-strategy: dual\n", 2, "device-plugin.yaml:1:15: expected none, single or mixed")
        check("a bad value in the configuration file: exit 2 with FILE:LINE:COL, no socket", ok, why)
        ok, why = run_bad("containers: true\nmig-strategies: mixed\n", 2, "device-plugin.yaml:2:1: unknown setting")
        check("an unknown setting: exit 2 with FILE:LINE:COL", ok, why)
        ok, why = run_bad("create-mdevs: [../x]\n", 2, "device-plugin.yaml:1:16: expected an mdev type id")
        check("a bad mdev type in create-mdevs: exit 2 with FILE:LINE:COL", ok, why)
        ok, why = run_bad("mig-config: /etc/x.yaml\n", 2, "expected a relative path under the root")
        check("an absolute mig-config path: exit 2", ok, why)
        ok, why = run_bad(None, 1, "nope.yaml: no such file", "--config", "etc/gpuvirt/nope.yaml")
        check("--config naming a missing file: exit 1 saying so", ok, why)
        with open(conf, "w") as f:
            f.write("kubevirt: false\nrescan-interval-ms: 500\n")
        h.gpuvirt("passthrough", "enable", "0000:02:00.0", "--include", "0000:03:00.0", "--force")
        h.start()
        gpu = h.kubelet.accept(["nvidia.com/gpu"])["nvidia.com/gpu"]
        l, _ = gpu.wait_list(lambda l: len(l) == 1)
        time.sleep(1.5)
        check("kubevirt: false: the vfio-pci card is not offered, the console GPU is", list(h.kubelet.plugins) ==
              ["nvidia.com/gpu"] and h.kubelet.registrations.empty() and len(l) == 1, str(list(h.kubelet.plugins)))
        check("the settings are logged at start", "KubeVirt no, rescan every 500 ms" in h.log_text(), h.log_text()[:300])
    finally:
        h.stop()
        h.cleanup()


def scenario_t4_mdev():
    h = Host("t4-grid")
    try:
        made = [h.gpuvirt("vgpu", "create", "0000:3b:00.0", "nvidia-231").split(":")[0] for _ in range(2)]
        h.kubelet.start()
        h.start()
        pl = h.kubelet.accept(["nvidia.com/GRID_T4-2Q", "nvidia.com/gpu"])
        v = pl["nvidia.com/GRID_T4-2Q"]
        l, _ = v.wait_list(lambda l: len(l) > 0)
        check("mdev type GRID T4-2Q: resource nvidia.com/GRID_T4-2Q with the mdev UUIDs", ids(l) == sorted(made),
              "%s vs %s" % (ids(l), made))
        lg, _ = pl["nvidia.com/gpu"].wait_list(lambda l: len(l) > 0)
        check("the two T4s without vGPUs stay whole GPUs (one mode per GPU)", len(lg) == 2, str(lg))
        groups = {m["id"]: m["iommu_group"] for m in h.gpuvirt_json("vgpu", "list")}
        a = v.allocate([made[0]])
        envs = a[0]["envs"]
        paths = sorted(d["host_path"] for d in a[0]["devices"])
        check("Allocate: MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-2Q has the UUID",
              envs == {"MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-2Q": made[0]}, str(envs))
        check("Allocate: /dev/vfio/vfio and the mdev's group node",
              paths == sorted(["/dev/vfio/vfio", "/dev/vfio/%s" % groups[made[0]]]), str(a[0]["devices"]))
        extra = h.gpuvirt("vgpu", "create", "0000:3b:00.0", "nvidia-231").split(":")[0]
        l, t = v.wait_list(lambda l: extra in ids(l))
        check("a vGPU created by gpuvirt appears on the stream within 1 s", t < 1.0, "%.3fs" % t)
    finally:
        h.stop()
        h.cleanup()


def scenario_t4_create():
    h = Host("t4-grid")
    try:
        t4 = "sys/bus/pci/devices/0000:3b:00.0/mdev_supported_types/nvidia-231/available_instances"
        first = h.gpuvirt("vgpu", "create", "0000:3b:00.0", "nvidia-231").split(":")[0]
        with open(os.path.join(h.root, t4)) as f:
            free = int(f.read())
        h.kubelet.start()
        h.start("--create-mdevs", "nvidia-231")
        v = h.kubelet.accept(["nvidia.com/GRID_T4-2Q"])["nvidia.com/GRID_T4-2Q"]
        l, _ = v.wait_list(lambda l: len(l) > 0)
        check("--create-mdevs: the mdev and one ID per free instance of its type (available_instances %d)" % free,
              len(l) == 1 + free and first in ids(l), str(len(l)))
        before = ids(l)
        new = [u for u in before if u != first][:2]
        a = v.allocate(new)
        exist = [os.path.isdir(os.path.join(h.root, "sys/bus/mdev/devices", u)) for u in new]
        groups = [os.path.basename(os.readlink(os.path.join(h.root, "sys/bus/mdev/devices", u, "iommu_group")))
                  for u in new if os.path.isdir(os.path.join(h.root, "sys/bus/mdev/devices", u))]
        check("Allocate of two free instances creates the two mdevs with those UUIDs", all(exist), str(exist))
        check("...and answers their UUIDs and their new groups' nodes",
              a[0]["envs"] == {"MDEV_PCI_RESOURCE_NVIDIA_COM_GRID_T4-2Q": ",".join(new)} and
              sorted(d["host_path"] for d in a[0]["devices"]) == sorted(["/dev/vfio/vfio"] +
                                                                         ["/dev/vfio/" + g for g in groups]), str(a))
        time.sleep(1.2)
        check("the IDs stay the same once created (the list is stable)", ids(v.latest) == before,
              "%d vs %d" % (len(v.latest), len(before)))
        rest = [u for u in before if u not in new and u != first][:2]
        h.gpuvirt("sim", "fault", "@2", "ENOSPC")
        expect_rpc_error("a create that fails in an Allocate of two: INTERNAL naming the second", lambda: v.allocate(rest),
                         grpc.StatusCode.INTERNAL, rest[1])
        check("...and the mdev it had created is removed again",
              not any(os.path.exists(os.path.join(h.root, "sys/bus/mdev/devices", u)) for u in rest),
              str([u for u in rest if os.path.exists(os.path.join(h.root, "sys/bus/mdev/devices", u))]))
    finally:
        h.stop()
        h.cleanup()


def scenario_h100_vendor():
    h = Host("h100")
    try:
        for _ in range(2):
            h.gpuvirt("vgpu", "create", "0000:16:00.0", "1044")
        vfs = [v["id"] for v in h.gpuvirt_json("vgpu", "list") if v.get("kind") == "vendor"]
        h.kubelet.start()
        h.start()
        name = "nvidia.com/NVIDIA_H100-4C"
        pl = h.kubelet.accept([name])
        l, _ = pl[name].wait_list(lambda l: len(l) == 2)
        time.sleep(1)
        check("NVIDIA vendor vGPU VFs (H100-4C set on two VFs): resource %s, IDs the VF addresses" % name,
              ids(l) == sorted(vfs), "%s vs %s" % (ids(l), vfs))
        check("no nvidia.com/gpu: one H100 serves vGPUs, the other its VFs (SR-IOV mode), neither a container",
              list(h.kubelet.plugins) == [name] and h.kubelet.registrations.empty(), str(list(h.kubelet.plugins)))
        a = pl[name].allocate(sorted(vfs)[:1])
        v = sorted(vfs)[0]
        check("Allocate: PCI_RESOURCE_NVIDIA_COM_NVIDIA_H100-4C and the VF's group node",
              a[0]["envs"] == {"PCI_RESOURCE_NVIDIA_COM_NVIDIA_H100-4C": v} and
              sorted(d["host_path"] for d in a[0]["devices"]) == sorted(["/dev/vfio/vfio", "/dev/vfio/" + h.group_of(v)]),
              str(a))
    finally:
        h.stop()
        h.cleanup()


def scenario_flex_vfs():
    h = Host("flex-sriov")
    try:
        h.kubelet.start()
        h.start()
        h.gpuvirt("sriov", "set", "0000:16:00.0", "4", "--vfio")
        pl = h.kubelet.accept(["intel.com/DATA_CENTER_GPU_FLEX_170"])
        p = pl["intel.com/DATA_CENTER_GPU_FLEX_170"]
        vfs = sorted(os.path.basename(os.readlink(os.path.join(h.root, "sys/bus/pci/devices/0000:16:00.0", l)))
                     for l in os.listdir(os.path.join(h.root, "sys/bus/pci/devices/0000:16:00.0"))
                     if l.startswith("virtfn"))
        l, _ = p.wait_list(lambda l: len(l) == 4)
        check("VFs on vfio-pci appear as a KubeVirt resource, IDs their addresses (plugin started before them)",
              ids(l) == vfs, "%s vs %s" % (ids(l), vfs))
        a = p.allocate(vfs[:2])
        want = sorted(["/dev/vfio/vfio"] + ["/dev/vfio/%s" % h.group_of(v) for v in vfs[:2]])
        check("Allocate: PCI_RESOURCE_INTEL_COM_DATA_CENTER_GPU_FLEX_170 lists the VFs",
              a[0]["envs"] == {"PCI_RESOURCE_INTEL_COM_DATA_CENTER_GPU_FLEX_170": ",".join(vfs[:2])}, str(a))
        check("Allocate: /dev/vfio/vfio and each VF's group, rw with mknod",
              sorted(d["host_path"] for d in a[0]["devices"]) == want and
              all(d["permissions"] == "mrw" and d["container_path"] == d["host_path"] for d in a[0]["devices"]),
              str(a[0]["devices"]))
        h.gpuvirt("sriov", "set", "0000:16:00.0", "0")
        l, t = p.wait_list(lambda l: len(l) == 0)
        check("VFs removed: the list empties within 1 s, the resource stays registered", t < 1.0, "%.3fs" % t)
    finally:
        h.stop()
        h.cleanup()


def scenario_workstation():
    h = Host("workstation")
    try:
        h.kubelet.start()
        h.start("-v")  # core's NVML says at debug level when it initialises NVML
        gpu = h.kubelet.accept(["nvidia.com/gpu"])["nvidia.com/gpu"]
        l, _ = gpu.wait_list(lambda l: len(l) == 2)
        check("both GeForce cards are whole GPUs while on nvidia", len(l) == 2, str(l))
        info = os.path.join(h.root, "proc/driver/nvidia/gpus/0000:02:00.0/information")
        with open(info) as f:
            node = os.path.join(h.root, "dev/nvidia" + f.read().split("Device Minor:")[1].split()[0])
        check("the simulated nvidia driver: each GPU it drives has its proc entry and its node",
              os.path.exists(node))
        time.sleep(2.2)  # two periodic rescans
        log = h.log_text()
        check("NVML is initialised once across rescans (core's one handle per process)",
              log.count("NVML initialised (") == 1 and "NVML: another root" not in log, log)
        h.gpuvirt("passthrough", "enable", "0000:02:00.0", "--include", "0000:03:00.0", "--force")
        l, t = gpu.wait_list(lambda l: len(l) == 1)
        check("passthrough enable: the card leaves nvidia.com/gpu within 1 s", t < 1.0, "%.3fs" % t)
        check("the GPU nvidia let go has no proc entry any more; its node stays, as nvidia-modprobe made it",
              not os.path.exists(info) and os.path.exists(node))
        log = h.log_text()
        check("a GPU leaving the nvidia driver initialises NVML again, once (it enumerates GPUs at nvmlInit)",
              log.count("NVML initialised (") == 2 and
              log.count("NVML: another root or other GPUs on nvidia, initialised again") == 1 and
              "the shared handle held" not in log, log)
        name = "nvidia.com/TU116_GEFORCE_GTX_1660_SUPER"
        p = h.kubelet.accept([name])[name]
        l, _ = p.wait_list(lambda l: len(l) == 1)
        check("...and registers as %s, ID its address" % name, ids(l) == ["0000:02:00.0"], str(l))
        a = p.allocate(["0000:02:00.0"])
        check("Allocate: PCI_RESOURCE_NVIDIA_COM_TU116_GEFORCE_GTX_1660_SUPER and the group's node",
              a[0]["envs"] == {"PCI_RESOURCE_NVIDIA_COM_TU116_GEFORCE_GTX_1660_SUPER": "0000:02:00.0"} and
              sorted(d["host_path"] for d in a[0]["devices"]) ==
              sorted(["/dev/vfio/vfio", "/dev/vfio/" + h.group_of("0000:02:00.0")]), str(a))
        expect_rpc_error("Allocate of the companion USB controller (in the group, not a GPU): INVALID_ARGUMENT",
                         lambda: p.allocate(["0000:03:00.0"]), grpc.StatusCode.INVALID_ARGUMENT, "unknown device ID")
        h.gpuvirt("passthrough", "disable", "0000:02:00.0", "0000:03:00.0")
        l, t = p.wait_list(lambda l: len(l) == 0)
        l2, _ = gpu.wait_list(lambda l: len(l) == 2)
        check("passthrough disable: back to nvidia.com/gpu, the KubeVirt resource empties", len(l2) == 2 and t < 1.0)
        with open(info) as f:
            again = os.path.join(h.root, "dev/nvidia" + f.read().split("Device Minor:")[1].split()[0])
        check("nvidia binds the GPU again: its proc entry is back, with the same minor", again == node)
        # off the bus after NVML was initialised: NVML refuses its handle and has no UUID for it any more
        h.gpuvirt("sim", "off-bus", "0000:02:00.0")
        l3, t = gpu.wait_list(lambda l: sorted(d["health"] for d in l) == ["Healthy", "Unhealthy"], timeout=3)
        check("a GPU off the bus stays on nvidia.com/gpu with its UUID, Unhealthy (not dropped) (%.2fs)" % t,
              ids(l3) == ids(l2), "%s before %s" % (l3, l2))
    finally:
        h.stop()
        h.cleanup()


SCENARIOS = {
    "dgx-mixed": scenario_dgx_mixed,
    "dgx-single": scenario_dgx_single,
    "dgx-dynamic": scenario_dgx_dynamic,
    "gpuvirtd-health": scenario_gpuvirtd_health,
    "cdi": scenario_cdi,
    "config-file": scenario_config_file,
    "t4-mdev": scenario_t4_mdev,
    "t4-create": scenario_t4_create,
    "h100-vendor": scenario_h100_vendor,
    "flex-vfs": scenario_flex_vfs,
    "workstation": scenario_workstation,
}

for name, fn in SCENARIOS.items():
    if ONLY and name not in ONLY:
        continue
    print("# %s" % name)
    try:
        fn()
    except Exception as e:  # a scenario that cannot go on is one failure, the others still run
        check("%s ran to the end" % name, False, "%s: %s" % (type(e).__name__, e))
print("%d passed, %d failed" % (PASSED, FAILED))
sys.exit(1 if FAILED else 0)
