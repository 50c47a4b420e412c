# Sourced by scripts/test-images.sh: builds `docker:cli`, the image of SpawnIt's node-cleaning
# job (crates/cluster: a one-shot Swarm job on a node that runs `docker volume rm` through the
# node's mounted Docker socket). A scratch image with a static busybox (`sh`) and the host's
# static `docker` CLI, stripped; the cluster tests copy it into every Swarm node.

build_docker_cli() {
	local tag=docker:cli
	ensure_packages busybox-static binutils
	local cli
	cli=$(readlink -f "$(command -v docker)")
	if ldd "$cli" >/dev/null 2>&1; then
		say "$cli is not a static binary: docker:cli needs a static docker CLI"
		return 1
	fi
	local hash
	hash=$(inputs_hash "$tag" /bin/busybox "$cli" "$assets/docker-cli.sh")
	up_to_date "$tag" "$hash" && return 0
	local root="$work/docker-cli"
	mkdir -p "$root/usr/local/bin" "$root/etc"
	install -d -m 1777 "$root/tmp"
	busybox_into "$root"
	strip -o "$root/usr/local/bin/docker" "$cli"
	chmod 0755 "$root/usr/local/bin/docker"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	import_rootfs "$tag" "$hash" "$root" \
		"ENV PATH=$std_path" \
		'CMD ["docker", "--help"]'
}
