#!/bin/sh
# A Swarm node in a container: Debian's dockerd with the vfs storage driver (fuse-overlayfs
# does not work nested), its own cgroup v1 hierarchies and a writable /sys. Run by
# crates/testkit with --cap-add ALL --cap-drop SYS_RESOURCE and seccomp/apparmor unconfined.
set -eu
mount -o remount,rw /sys 2>/dev/null || true
# The container's own cgroup v1 hierarchies (it runs with --cgroupns private), made writable
# so the inner engine can create its containers' cgroups under them.
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
for dir in /sys/fs/cgroup/*; do
	mount -o remount,bind,rw "$dir" 2>/dev/null || true
done
# A killed node restarts: stale pid files would stop dockerd and containerd.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid /run/docker.pid
mkdir -p /var/lib/docker /tmp
exec dockerd --storage-driver vfs --host unix:///var/run/docker.sock --host tcp://0.0.0.0:2375 \
	--iptables=true --tls=false "$@"
