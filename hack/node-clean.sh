#!/usr/bin/env bash
# hack/node-clean.sh: removes everything the local node changed on this machine, idempotently.
# Run by `make cluster-down`, by the test harness before and after each run, and by the janitor
# that a test run leaves behind to clean up if the run itself is killed.
#
# The node is one per machine: its paths, bridge and iptables chains are fixed (see
# test/harness/node-layout.ts, which names the same paths). What it undoes:
#   processes   kubelet, kube-proxy, containerd, their shims and every container process
#   mounts      the kubelet's and containerd's directories, pod volumes, network namespaces
#   cgroups     /sys/fs/cgroup/*/kubepods
#   iptables    every KUBE-* and CNI-* chain and rule (IPv4 and IPv6), nothing else
#   network     the pod bridge and its veths
#   sysctls     the values saved before the node first started
#   files       the node's directories and what the kubelet writes to fixed host paths
set -uo pipefail

state=${TASKGRANT_NODE_STATE:-/var/lib/taskgrant-node}
run=${TASKGRANT_NODE_RUN:-/run/taskgrant-node}
bridge=${TASKGRANT_NODE_BRIDGE:-tg0}
saved_sysctls=/run/taskgrant-node.sysctl
lock=/run/taskgrant-node.lock

[ "$(id -u)" = 0 ] || { echo "node-clean: must run as root" >&2; exit 1; }

exec 9>"$lock"
flock 9

alive() { kill -0 "$1" 2>/dev/null; }

# 1. Processes: the node's daemons by their pid files, then shims and container processes.
for f in "$run"/pids/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null)
  if [ -n "$pid" ] && alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
# Shims re-parent themselves to init, so they outlive containerd: find them by our socket.
pkill -KILL -f "containerd-shim-runc-v2 .*-address $run/" 2>/dev/null
for procs in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [ -d "$procs" ] || continue
  find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r pid; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done
done
sleep 0.2

# 2. Mounts under the node's directories and its network namespaces, deepest first.
findmnt -rn -o TARGET 2>/dev/null | awk -v s="$state" -v r="$run" \
  'index($0, s"/") == 1 || $0 == s || index($0, r"/") == 1 || $0 == r || $0 ~ /^\/(var\/)?run\/netns\/cni-/' |
  sort -r | while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null
  done
rm -f /run/netns/cni-* /var/run/netns/cni-* 2>/dev/null

# 3. cgroups: leaves first. A cgroup whose last process just died may need a moment.
for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
  [ -d "$root" ] || continue
  for _ in 1 2 3 4 5; do
    find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$root" ] || break
    sleep 0.2
  done
done

# 4. iptables: drop every line that names a KUBE- or CNI- chain, restore the rest untouched.
for tool in iptables ip6tables; do
  command -v "$tool-save" >/dev/null || continue
  rules=$("$tool-save" 2>/dev/null) || continue
  if printf '%s\n' "$rules" | grep -qE 'KUBE-|CNI-'; then
    printf '%s\n' "$rules" | grep -vE 'KUBE-|CNI-' | "$tool-restore" 2>/dev/null ||
      echo "node-clean: $tool-restore failed; remaining KUBE-/CNI- rules: $("$tool-save" | grep -cE 'KUBE-|CNI-')" >&2
  fi
done

# 5. The pod bridge (its veths went with their network namespaces).
ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge" 2>/dev/null

# 6. sysctls the kubelet, kube-proxy and the bridge plugin set, back to what they were.
if [ -f "$saved_sysctls" ]; then
  while IFS='=' read -r key value; do
    [ -n "$key" ] && sysctl -q -w "$key=$value" >/dev/null 2>&1
  done <"$saved_sysctls"
  rm -f "$saved_sysctls"
fi

# 7. Files: the node's own directories, and the fixed host paths the kubelet writes regardless of
#    its root directory (only what it made: a directory is removed only once empty).
rm -rf "$state" "$run"
find /var/log/containers -maxdepth 1 -type l -lname "$state/*" -delete 2>/dev/null
rmdir /var/log/containers 2>/dev/null
rm -rf /var/lib/kubelet/device-plugins /var/lib/kubelet/plugins_registry /var/lib/kubelet/plugins 2>/dev/null
rmdir /var/lib/kubelet 2>/dev/null
# libcni's result cache: our network's entries, and the loopback ones containerd adds per sandbox.
rm -rf /var/lib/cni/results/taskgrant-* /var/lib/cni/results/cni-loopback-* 2>/dev/null
rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null
rmdir /usr/libexec/kubernetes/kubelet-plugins/volume/exec /usr/libexec/kubernetes/kubelet-plugins/volume \
  /usr/libexec/kubernetes/kubelet-plugins /usr/libexec/kubernetes 2>/dev/null
rm -f "$lock" # still held through fd 9 until this script exits
exit 0
