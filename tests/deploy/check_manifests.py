#!/usr/bin/env python3
"""Checks the Kubernetes manifests under deploy/.

Every YAML file parses and every document is a Kubernetes object; the
CSIDriver, RBAC, node DaemonSets (node-local and cluster mode), Redis, the
cluster secret and the examples carry the fields the CSI node plugin relies
on; every example references the driver by the exact name the plugin reports
(kDriverName in fs/csi/names.h).

Usage: check_manifests.py DEPLOY_DIR   (exit 0: all good; 1: problems listed)
Needs PyYAML (Debian: python3-yaml).
"""

import os
import re
import shlex
import sys

import yaml

PROBLEMS = []


def problem(where, msg):
    PROBLEMS.append(f"{where}: {msg}")


def check(cond, where, msg):
    if not cond:
        problem(where, msg)
    return cond


def driver_name(repo):
    text = open(os.path.join(repo, "fs", "csi", "names.h")).read()
    m = re.search(r'kDriverName\[\]\s*=\s*"([^"]+)"', text)
    if not m:
        sys.exit("cannot find kDriverName in fs/csi/names.h")
    return m.group(1)


def load(deploy):
    """(path, doc) for every document of every YAML file under deploy/."""
    docs = []
    files = []
    for root, _, names in os.walk(deploy):
        for n in sorted(names):
            if n.endswith((".yaml", ".yml")):
                files.append(os.path.join(root, n))
    check(files, deploy, "no YAML files")
    for path in sorted(files):
        rel = os.path.relpath(path, deploy)
        try:
            with open(path) as f:
                parsed = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            problem(rel, f"does not parse: {e}")
            continue
        check(parsed, rel, "holds no document")
        for i, d in enumerate(parsed):
            where = f"{rel}#{i}"
            if not check(isinstance(d, dict), where, "not a mapping"):
                continue
            check(d.get("apiVersion"), where, "no apiVersion")
            check(d.get("kind"), where, "no kind")
            check((d.get("metadata") or {}).get("name"), where, "no metadata.name")
            docs.append((rel, d))
    return docs


def name_of(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def pod_spec(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("spec") or {}
    if kind in ("Deployment", "DaemonSet", "StatefulSet", "Job", "ReplicaSet"):
        return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def command_line(container):
    return " ".join(str(x) for x in (container.get("command") or []) + (container.get("args") or []))


def arg_value(container, flag):
    """Value of --flag=V or --flag V among command and args, else None."""
    words = []
    for x in (container.get("command") or []) + (container.get("args") or []):
        words += shlex.split(str(x), comments=False) if "\n" in str(x) or " " in str(x) else [str(x)]
    for i, w in enumerate(words):
        if w.startswith(flag + "="):
            return w.split("=", 1)[1]
        if w == flag and i + 1 < len(words):
            return words[i + 1]
    return None


def mounts(container):
    return {m.get("name"): m for m in container.get("volumeMounts") or []}


def volumes(spec):
    return {v.get("name"): v for v in spec.get("volumes") or []}


def host_path(spec, volume_name):
    v = volumes(spec).get(volume_name) or {}
    return (v.get("hostPath") or {}).get("path")


def privileged(container):
    return bool((container.get("securityContext") or {}).get("privileged"))


def has_sys_admin(container):
    caps = ((container.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
    return privileged(container) or "SYS_ADMIN" in caps


def check_csidriver(docs, driver):
    drivers = [(p, d) for p, d in docs if d.get("kind") == "CSIDriver"]
    if not check(len(drivers) == 1, "deploy", f"expected one CSIDriver, found {len(drivers)}"):
        return
    path, d = drivers[0]
    where = f"{path} {name_of(d)}"
    spec = d.get("spec") or {}
    check(d["metadata"]["name"] == driver, where, f"name must be {driver!r} (what GetPluginInfo reports)")
    check(d.get("apiVersion") == "storage.k8s.io/v1", where, "apiVersion must be storage.k8s.io/v1")
    check(spec.get("attachRequired") is False, where, "attachRequired must be false (no controller)")
    check(spec.get("podInfoOnMount") is True, where, "podInfoOnMount must be true (namespaces key volumes)")
    modes = spec.get("volumeLifecycleModes") or []
    check("Persistent" in modes and "Ephemeral" in modes, where, "volumeLifecycleModes needs Persistent and Ephemeral")
    check(spec.get("fsGroupPolicy") == "File", where, "fsGroupPolicy must be File (as deploy/README.md explains)")


def check_rbac(docs):
    sas = {d["metadata"]["name"] for _, d in docs if d.get("kind") == "ServiceAccount"}
    check("tempfs-node" in sas, "deploy", "no ServiceAccount tempfs-node")
    for path, d in docs:
        if d.get("kind") in ("Role", "ClusterRole"):
            for rule in d.get("rules") or []:
                for key in ("verbs", "resources", "apiGroups"):
                    check("*" not in (rule.get(key) or []), f"{path} {name_of(d)}", f"wildcard in {key}")
    for path, d in docs:
        if d.get("kind") == "ServiceAccount":
            check(d.get("automountServiceAccountToken") is False, f"{path} {name_of(d)}",
                  "the node plugin needs no API token: automountServiceAccountToken: false")
    return sas


def same_socket(container, spec, plugin_dir, endpoint):
    """Whether the container's --csi-address is the plugin's socket file."""
    addr = arg_value(container, "--csi-address") or ""
    addr = addr[len("unix://"):] if addr.startswith("unix://") else addr
    if os.path.basename(addr) != os.path.basename(endpoint):
        return False
    return any(v.get("mountPath") == os.path.dirname(addr) and host_path(spec, n) == plugin_dir
               for n, v in mounts(container).items())


def check_daemonset(path, d, driver, sas, objects):
    where = f"{path} {name_of(d)}"
    spec = pod_spec(d)
    check(spec.get("serviceAccountName") in sas, where, "serviceAccountName is not a ServiceAccount in deploy/")
    containers = spec.get("containers") or []
    by_role = {}
    for c in containers:
        line = command_line(c)
        image = str(c.get("image", ""))
        if "csi-node-driver-registrar" in image:
            by_role["registrar"] = c
        elif "livenessprobe" in image:
            by_role["liveness"] = c
        elif re.search(r"(^|\s)csi(\s|$)", line) and "tempfs" in line:
            by_role["csi"] = c
        elif "tempfs mount" in line:
            by_role["mount"] = c
    for role in ("csi", "mount", "registrar", "liveness"):
        check(role in by_role, where, f"no {role} container")
    if len(by_role) < 4:
        return
    plugin_dir = f"/var/lib/kubelet/plugins/{driver}"

    csi = by_role["csi"]
    cw = f"{where} container {csi.get('name')}"
    check(privileged(csi), cw, "must be privileged (mounts into kubelet's pods directory)")
    endpoint = arg_value(csi, "--endpoint") or ""
    check(endpoint.startswith("unix:///"), cw, "--endpoint must be unix:///PATH")
    sock_dir = os.path.dirname(endpoint[len("unix://"):]) if endpoint.startswith("unix://") else ""
    m = mounts(csi)
    sock_mount = [n for n, v in m.items() if v.get("mountPath") == sock_dir]
    check(sock_mount and host_path(spec, sock_mount[0]) == plugin_dir, cw,
          f"the socket directory {sock_dir!r} must be the hostPath {plugin_dir}")
    kubelet = [v for n, v in m.items() if (host_path(spec, n) or "") in ("/var/lib/kubelet", "/var/lib/kubelet/pods")]
    check(kubelet, cw, "kubelet's pods directory is not mounted")
    for v in kubelet:
        check(v.get("mountPropagation") == "Bidirectional", cw,
              "kubelet's directory needs mountPropagation: Bidirectional")
        check(v.get("mountPath") == host_path(spec, v.get("name")), cw,
              "kubelet's directory must be mounted at the same path as on the host (targets are host paths)")
    check(arg_value(csi, "--node-id"), cw, "no --node-id")
    # The plugin refuses targets outside --kubelet-dir: kubelet's pods
    # directory must lie beneath it.
    kubelet_dir = (arg_value(csi, "--kubelet-dir") or "/var/lib/kubelet").rstrip("/")
    for v in kubelet:
        check(str(v.get("mountPath")) == kubelet_dir or str(v.get("mountPath")).startswith(kubelet_dir + "/"), cw,
              f"kubelet's directory {v.get('mountPath')} is not beneath --kubelet-dir {kubelet_dir}")
    probe = (csi.get("livenessProbe") or {}).get("httpGet") or {}
    check(probe.get("path") == "/healthz", cw, "livenessProbe must be httpGet /healthz (the livenessprobe sidecar)")

    mnt = by_role["mount"]
    mw = f"{where} container {mnt.get('name')}"
    check(privileged(mnt), mw, "the FUSE daemon must be privileged")
    check("tempfs mount -f" in command_line(mnt), mw, "must run `tempfs mount -f` (foreground)")
    mm = mounts(mnt)
    fuse = [n for n in mm if host_path(spec, n) == "/dev/fuse"]
    check(fuse, mw, "no hostPath /dev/fuse")
    mount_point = arg_value(csi, "--mount") or ""
    check(mount_point and mount_point in command_line(mnt), cw,
          "--mount must be the mount point `tempfs mount` uses")
    shared = [v for v in mm.values() if mount_point.startswith(str(v.get("mountPath")) + "/")]
    check(shared and shared[0].get("mountPropagation") == "Bidirectional", mw,
          "the tempfs mount point's directory needs mountPropagation: Bidirectional")
    seen = [v for v in m.values() if mount_point.startswith(str(v.get("mountPath")) + "/")]
    check(seen and seen[0].get("mountPropagation") in ("HostToContainer", "Bidirectional"), cw,
          "the csi container must see the tempfs mount (HostToContainer)")

    reg = by_role["registrar"]
    rw = f"{where} container {reg.get('name')}"
    check(same_socket(reg, spec, plugin_dir, endpoint), rw,
          "--csi-address must be the plugin's socket (the same hostPath directory)")
    check(arg_value(reg, "--kubelet-registration-path") == f"{plugin_dir}/csi.sock", rw,
          f"--kubelet-registration-path must be {plugin_dir}/csi.sock")
    regs = [n for n in mounts(reg) if host_path(spec, n) == "/var/lib/kubelet/plugins_registry"]
    check(regs, rw, "kubelet's plugins_registry directory is not mounted")

    live = by_role["liveness"]
    lw = f"{where} container {live.get('name')}"
    check(same_socket(live, spec, plugin_dir, endpoint), lw,
          "--csi-address must be the plugin's socket (the same hostPath directory)")
    port = arg_value(live, "--health-port") or "9808"
    ports = {str(p.get("containerPort")) for p in csi.get("ports") or []}
    check(port in ports, cw, f"the health port {port} is not a port of the csi container")

    # Cluster mode: Redis Service and the secret must exist.
    meta = arg_value(mnt, "--meta")
    if meta:
        host = re.sub(r"^redis://", "", meta).split(":")[0].split(".")[0]
        check(("Service", host) in objects, mw, f"--meta names Service {host!r}, not in deploy/")
        secret_file = arg_value(mnt, "--secret-file") or ""
        check(secret_file, mw, "cluster mode needs --secret-file")
        sec = [v for v in mm.values() if secret_file.startswith(str(v.get("mountPath")) + "/")]
        vol = volumes(spec).get(sec[0].get("name")) if sec else None
        name = ((vol or {}).get("secret") or {}).get("secretName")
        check(name and ("Secret", name) in objects, mw, "--secret-file must come from a Secret in deploy/")
        check(((vol or {}).get("secret") or {}).get("defaultMode") in (0o400, 0o600), mw,
              "the secret file must be mode 0400 or 0600 (tempfs refuses others)")


def check_redis(docs, objects):
    svcs = [(p, d) for p, d in docs if d.get("kind") == "Service" and "redis" in d["metadata"]["name"]]
    deps = [(p, d) for p, d in docs if d.get("kind") == "Deployment" and "redis" in d["metadata"]["name"]]
    if not (check(svcs, "deploy", "no Redis Service") and check(deps, "deploy", "no Redis Deployment")):
        return
    for p, s in svcs:
        sel = (s.get("spec") or {}).get("selector") or {}
        match = [d for _, d in deps if all(
            ((d["spec"]["template"].get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in sel.items())]
        check(match, f"{p} {name_of(s)}", "selects no Redis Deployment")
        ports = [pt.get("port") for pt in (s.get("spec") or {}).get("ports") or []]
        check(6379 in ports, f"{p} {name_of(s)}", "no port 6379")


def csi_volumes(spec):
    return {n: v["csi"] for n, v in volumes(spec).items() if isinstance(v.get("csi"), dict)}


def check_examples(docs, driver):
    examples = [(p, d) for p, d in docs if p.startswith("examples" + os.sep)]
    check(examples, "deploy/examples", "no examples")
    by_file = {}
    for p, d in examples:
        by_file.setdefault(p, []).append(d)
        spec = pod_spec(d)
        if d.get("kind") == "PersistentVolume":
            c = (d.get("spec") or {}).get("csi") or {}
            where = f"{p} {name_of(d)}"
            check(c.get("driver") == driver, where, f"csi.driver must be exactly {driver!r}")
            check(c.get("volumeHandle"), where, "no volumeHandle")
            attrs = c.get("volumeAttributes") or {}
            check(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", str(attrs.get("volume", ""))), where,
                  "volumeAttributes.volume must be a DNS label")
        if spec is None:
            continue
        where = f"{p} {name_of(d)}"
        for n, c in csi_volumes(spec).items():
            check(c.get("driver") == driver, where, f"volume {n}: csi.driver must be exactly {driver!r}")
            attrs = c.get("volumeAttributes") or {}
            check(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", str(attrs.get("volume", ""))), where,
                  f"volume {n}: volumeAttributes.volume must be a DNS label")
            for k in attrs:
                check(k in ("volume", "capacity", "retention"), where, f"volume {n}: unknown attribute {k!r}")
        names = set(volumes(spec))
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for m in c.get("volumeMounts") or []:
                check(m.get("name") in names, where, f"container {c.get('name')} mounts unknown volume {m.get('name')}")

    def shared_pairs(docs_in_file):
        """Pairs of pods naming the same tempfs volume, with their affinity kind."""
        pods = [d for d in docs_in_file if d.get("kind") == "Pod"]
        out = []
        for a in pods:
            for b in pods:
                if a is b:
                    continue
                va = {c["volumeAttributes"]["volume"] for c in csi_volumes(a["spec"]).values()}
                vb = {c["volumeAttributes"]["volume"] for c in csi_volumes(b["spec"]).values()}
                if va & vb:
                    aff = (b["spec"].get("affinity") or {})
                    out.append(("podAffinity" in aff, "podAntiAffinity" in aff))
        return out

    def example(name):
        return by_file.get(os.path.join("examples", name), [])

    same = shared_pairs(example("same-node-pipeline.yaml"))
    check(any(a for a, _ in same), "examples/same-node-pipeline.yaml",
          "needs two pods sharing a volume, one with podAffinity to the other")
    two = shared_pairs(example("two-node-pipeline.yaml"))
    check(any(b for _, b in two), "examples/two-node-pipeline.yaml",
          "needs two pods sharing a volume, one with podAntiAffinity to the other")
    shm = example("shared-memory.yaml")
    check(shared_pairs(shm) and "MAP_SHARED" in yaml.safe_dump_all(shm), "examples/shared-memory.yaml",
          "needs two pods sharing a volume and mapping it MAP_SHARED")
    fd = example("fd-passing.yaml")
    check(shared_pairs(fd) and "send_fds" in yaml.safe_dump_all(fd), "examples/fd-passing.yaml",
          "needs two pods sharing a volume and passing descriptors (send_fds)")
    pv = example("static-pv.yaml")
    kinds = {d.get("kind") for d in pv}
    check({"PersistentVolume", "PersistentVolumeClaim"} <= kinds, "examples/static-pv.yaml", "needs a PV and a PVC")

    sidecar = [d for d in example("native-sidecar.yaml") if d.get("kind") == "Pod"]
    if check(sidecar, "examples/native-sidecar.yaml", "no Pod"):
        spec = sidecar[0]["spec"]
        where = "examples/native-sidecar.yaml"
        inits = [c for c in spec.get("initContainers") or [] if "tempfs mount -f" in command_line(c)]
        if check(inits, where, "needs an init container running `tempfs mount -f`"):
            side = inits[0]
            check(side.get("restartPolicy") == "Always", where, "the tempfs init container needs restartPolicy: Always")
            check(has_sys_admin(side), where, "the sidecar needs privileged or SYS_ADMIN")
            check(any(host_path(spec, n) == "/dev/fuse" for n in mounts(side)), where, "the sidecar needs /dev/fuse")
            check(side.get("startupProbe"), where, "the sidecar needs a startupProbe (readiness before the apps)")
            bidir = [v for v in mounts(side).values() if v.get("mountPropagation") == "Bidirectional"]
            if check(bidir, where, "the sidecar's mount point needs mountPropagation: Bidirectional"):
                shared = bidir[0]["name"]
                check("emptyDir" in volumes(spec).get(shared, {}), where, "the shared mount point should be an emptyDir")
                apps = spec.get("containers") or []
                check(apps and all(mounts(c).get(shared, {}).get("mountPropagation") == "HostToContainer"
                                   for c in apps),
                      where, "every app container mounts the shared volume with HostToContainer")


def check_dockerfile(deploy):
    path = os.path.join(deploy, "Dockerfile")
    if not check(os.path.exists(path), "deploy", "no Dockerfile"):
        return
    text = open(path).read()
    check(re.search(r"^FROM debian:12", text, re.M), "deploy/Dockerfile", "must build on Debian 12")
    check("scripts/build" in text, "deploy/Dockerfile", "must build with scripts/build")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    deploy = os.path.abspath(sys.argv[1])
    repo = os.path.dirname(deploy)
    driver = driver_name(repo)
    docs = load(deploy)
    objects = {(d.get("kind"), d["metadata"]["name"]) for _, d in docs if isinstance(d.get("metadata"), dict)}
    check_csidriver(docs, driver)
    sas = check_rbac(docs)
    daemonsets = [(p, d) for p, d in docs if d.get("kind") == "DaemonSet"]
    check(len(daemonsets) == 2, "deploy", "expected the node-local and the cluster-mode DaemonSet")
    for p, d in daemonsets:
        check_daemonset(p, d, driver, sas, objects)
    check(any(d.get("kind") == "Secret" for _, d in docs), "deploy", "no Secret for the cluster secret")
    check(any(d.get("kind") == "Namespace" for _, d in docs), "deploy", "no Namespace")
    check_redis(docs, objects)
    check_examples(docs, driver)
    check_dockerfile(deploy)
    if PROBLEMS:
        print("\n".join(PROBLEMS))
        print(f"manifest check: {len(PROBLEMS)} problem(s)")
        return 1
    print(f"{len(docs)} manifests in {deploy} checked against driver {driver}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
