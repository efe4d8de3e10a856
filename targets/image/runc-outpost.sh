#!/usr/bin/env bash
# Runs `outpost ARGS...` in a container from an unpacked image bundle, the way
# the generated manifests run it on a node: first `outpost chown-wal` as root
# with CAP_CHOWN alone (the init container), then the agent as the image's
# user 65534 with no capability, a read-only root and no new privileges.
# The directory of --plan is bind-mounted read-write at the same path (it
# holds the plan and the WAL); the host's network is shared, so the agent and
# its receiver meet on loopback. Containers are named outpost-smoke-*.
#
# usage: runc-outpost.sh BUNDLE run --plan FILE ...   (BUNDLE from `umoci unpack`)
set -euo pipefail
bundle="$(cd "$1" && pwd)"
shift
plan=""
prev=""
for a in "$@"; do
  [ "$prev" = --plan ] && plan="$a"
  prev="$a"
done
[ -n "$plan" ] || { echo "runc-outpost.sh: no --plan FILE in: $*" >&2; exit 2; }
dir="$(cd "$(dirname "$plan")" && pwd)"
run="$(mktemp -d "$bundle/runs.XXXXXX")"
python3 - "$bundle" "$run" "$dir" "$@" <<'PY'
import json, os, sys
bundle, run, share, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
base = json.load(open(os.path.join(bundle, "config.json")))

def container(name, user, argv, caps):
    c = json.loads(json.dumps(base))
    c["root"] = {"path": os.path.join(bundle, "rootfs"), "readonly": True}
    c["process"].update(user=user, args=argv, terminal=False, noNewPrivileges=True)
    c["process"]["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    # No cgroup limits (none can be set here) and the host's network.
    c["linux"].pop("resources", None)
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
    c["mounts"].append({"destination": share, "type": "bind", "source": share, "options": ["rbind", "rw"]})
    os.makedirs(os.path.join(run, name))
    json.dump(c, open(os.path.join(run, name, "config.json"), "w"))

image_user = base["process"]["user"]
container("init", {"uid": 0, "gid": 0}, ["/outpost", "chown-wal", "--wal-dir", share,
          "--owner", f"{image_user['uid']}:{image_user['gid']}"], ["CAP_CHOWN"])
container("agent", image_user, ["/outpost"] + args, [])
PY
id="outpost-smoke-$$"
runc run --bundle "$run/init" "$id-init" >&2
exec runc run --bundle "$run/agent" "$id"
