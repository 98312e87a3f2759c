#!/usr/bin/python3
# The fleet's invariant checker, independent of gpuvirt's fleet code: it reads etcd with Debian's etcdctl
# and each host through gpuvirt's device views (list --vfs, vgpu list, mig status).
#
#   check.py snapshot GPUVIRT ROOT OUT.json          what is on a host before the fleet touches it
#   check.py check GPUVIRT ENDPOINTS NAME=ROOT=SNAPSHOT...
#
# check prints every violation and exits 1 when there is one:
#   double allocation        two ledger units on one whole GPU, overlapping MIG slices (with the base
#                            instances), more vGPUs than the type allows or two types on one NVIDIA GPU,
#                            more VFs than the PF has, two reservations claiming one realized unit
#   unit without reservation a MIG instance, mdev, vendor vGPU or vfio-bound GPU on a host that was not
#                            there before (snapshot) and that no live reservation's unit record claims
#   reservation without unit a ledger unit (of a live host) whose reservation record is missing, whose unit
#                            record is missing or not ready, or whose realized unit is not on the host
# VFs bound to vfio-pci that nobody claims are a PF's free capacity in SR-IOV mode, not units.
import base64
import json
import subprocess
import sys


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def observe(gpuvirt, root):
    g = [gpuvirt, "--root", root, "--json"]
    devs = run_json(g + ["list", "--vfs"])
    vgpus = run_json(g + ["vgpu", "list"])
    try:
        mig = run_json(g + ["mig", "status"])
    except subprocess.CalledProcessError:
        mig = []
    units = set()
    for d in devs:
        if d.get("driver") == "vfio-pci" and not d.get("physfn"):
            units.add(("pci", d["address"]))
    for v in vgpus:
        if v.get("active"):
            units.add(("mdev" if v["kind"] == "mdev" else "vendor", v["id"]))
    for gpu in mig:
        for i in gpu.get("instances") or []:
            units.add(("mig", gpu["address"], i["profile"], i["placement"]["start"], i["uuid"]))
    vfio_vfs = {d["address"] for d in devs if d.get("driver") == "vfio-pci" and d.get("physfn")}
    return {"units": sorted(list(u) for u in units), "vfio_vfs": sorted(vfio_vfs)}


def etcd_kvs(endpoints):
    out = subprocess.run(["etcdctl", "--endpoints", endpoints, "get", "--prefix", "/gpuvirt/v1/", "-w", "json"],
                         check=True, capture_output=True, text=True).stdout
    kvs = {}
    for kv in json.loads(out).get("kvs") or []:
        kvs[base64.b64decode(kv["key"]).decode()] = base64.b64decode(kv.get("value", "")).decode()
    return kvs


def check(gpuvirt, endpoints, hosts):
    kvs = etcd_kvs(endpoints)
    bad = []
    res = {k[len("/gpuvirt/v1/res/"):]: json.loads(v) for k, v in kvs.items() if k.startswith("/gpuvirt/v1/res/")}
    alive = {k[len("/gpuvirt/v1/alive/"):] for k in kvs if k.startswith("/gpuvirt/v1/alive/")}
    recs = {}
    for k, v in kvs.items():
        if k.startswith("/gpuvirt/v1/units/"):
            host, rid, n = k[len("/gpuvirt/v1/units/"):].split("/")
            recs[(host, rid, int(n))] = json.loads(v)
    claimed = {}
    for (host, rid, n), r in recs.items():
        if r.get("state") != "ready" or rid not in res:
            continue
        ident = (host, r["kind"], (r.get("gpu") + "/" if r["kind"] == "mig" else "") + str(r.get("id")))
        if ident in claimed:
            bad.append(f"double allocation: {host} {r['kind']} {r.get('id')} claimed by {claimed[ident]} and {rid}/{n}")
        claimed[ident] = f"{rid}/{n}"
    claimed_mig = {(h, r.get("gpu"), r.get("profile"), r.get("start")) for (h, rid, n), r in recs.items()
                   if r.get("state") == "ready" and rid in res and r["kind"] == "mig"}
    obs = {name: observe(gpuvirt, root) for name, (root, _) in hosts.items()}
    for k, v in kvs.items():
        if not k.startswith("/gpuvirt/v1/gpus/"):
            continue
        g = json.loads(v)
        host, addr, model, units = g["host"], g["address"], g["model"], g["units"]
        if "ref" in model:
            model = json.loads(kvs["/gpuvirt/v1/models/" + model["ref"]])
        kinds = {u["kind"] for u in units}
        if len(kinds) > 1:
            bad.append(f"double allocation: {host} {addr} serves {sorted(kinds)} at once")
        if "passthrough" in kinds and len(units) > 1:
            bad.append(f"double allocation: {host} {addr} whole GPU reserved {len(units)} times")
        if "mig" in kinds:
            prof = {p["name"]: p for p in model["mig"]["profiles"]}
            occ = g["base"]["mig_occ"]
            for u in units:
                m = ((1 << prof[u["profile"]]["size"]) - 1) << u["start"]
                if occ & m:
                    bad.append(f"double allocation: {host} {addr} MIG slices of {u['res']}/{u['n']} overlap")
                occ |= m
        if "vgpu" in kinds:
            types = {u["type"] for u in units} | ({g["base"]["vgpu_type"]} if g["base"]["vgpu_count"] else set())
            if model["vgpu_one_type"] and len(types) > 1:
                bad.append(f"double allocation: {host} {addr} carries vGPU types {sorted(types)}")
            tmax = {t["id"]: t["max"] for t in model["vgpu_types"]}
            for t in types:
                if len(units) + g["base"]["vgpu_count"] > tmax.get(t, 0):
                    bad.append(f"double allocation: {host} {addr} {len(units)} vGPUs of {t}, at most {tmax.get(t)}")
        if "vf" in kinds and len(units) > model["total_vfs"]:
            bad.append(f"double allocation: {host} {addr} {len(units)} VFs of {model['total_vfs']}")
        if host not in alive or host not in obs:
            continue
        seen = {tuple(x) for x in obs[host]["units"]}
        for u in units:
            rid, n = u["res"], u["n"]
            if rid not in res:
                bad.append(f"reservation without unit: ledger unit {rid}/{n} on {host} {addr} has no reservation")
                continue
            r = recs.get((host, rid, n))
            if not r or r.get("state") != "ready":
                bad.append(f"reservation without unit: {rid}/{n} on {host} {addr} not realized ({r and r.get('error')})")
                continue
            kind, ident = r["kind"], r.get("id")
            if kind == "passthrough":
                ok = ("pci", addr) in seen
            elif kind == "vf":
                ok = ident in obs[host]["vfio_vfs"]
            elif kind == "vgpu":
                ok = ("mdev", ident) in seen or ("vendor", ident) in seen
            else:
                ok = any(x[0] == "mig" and x[1] == addr and x[2] == u["profile"] and x[3] == u["start"] and
                         x[4] == r.get("mig_uuid") for x in seen)
            if not ok:
                bad.append(f"reservation without unit: {rid}/{n} on {host} {addr}: {kind} {ident} is not on the host")
    for host, (root, snap) in hosts.items():
        base = {tuple(x) for x in json.load(open(snap))["units"]}
        for x in obs[host]["units"]:
            x = tuple(x)
            if x in base:
                continue
            if x[0] == "pci":
                mine = (host, "passthrough", x[1]) in claimed
            elif x[0] in ("mdev", "vendor"):
                mine = (host, "vgpu", x[1]) in claimed
            else:
                mine = (host, x[1], x[2], x[3]) in claimed_mig
            if not mine:
                bad.append(f"unit without reservation: {host} {' '.join(map(str, x))}")
    for b in bad:
        print(b)
    print(f"checked {len(res)} reservation(s), {len(recs)} unit record(s), {len(hosts)} host(s): {len(bad)} violation(s)")
    return 1 if bad else 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "snapshot":
        json.dump(observe(sys.argv[2], sys.argv[3]), open(sys.argv[4], "w"))
        return 0
    if len(sys.argv) >= 5 and sys.argv[1] == "check":
        hosts = {}
        for h in sys.argv[4:]:
            name, root, snap = h.split("=", 2)
            hosts[name] = (root, snap)
        return check(sys.argv[2], sys.argv[3], hosts)
    print(__doc__ or "usage: check.py snapshot GPUVIRT ROOT OUT | check GPUVIRT ENDPOINTS NAME=ROOT=SNAP...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
