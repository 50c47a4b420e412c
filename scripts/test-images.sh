#!/usr/bin/env bash
# Builds the local stand-in images SpawnIt's tests run, tagged exactly as the catalog's
# templates name them (nothing can be pulled from a registry on the test machines):
#
#   hashicorp/http-echo:1.0  a scratch-like image: Debian's static busybox plus
#                            scripts/test-images/http-echo/* (same flags, same answers)
#   redis:7                  Debian's redis-server and redis-cli with exactly the shared
#                            libraries `ldd` lists, a static busybox as /bin/sh, and an
#                            entrypoint like the official image's
#   caddy:2                  Debian's caddy with the libraries `ldd` lists and a static busybox
#                            (sh, wget), /etc/caddy and the official image's command
#   spawnit-test/webapp:1    a stand-in app (static busybox httpd + CGI): / says which replica
#   spawnit-test/webapp:2    answered, /health is 200, /burn?seconds=N burns a core; :2 says
#   spawnit-test/webapp:unhealthy  Version: 2; :unhealthy has no /health (404); also tagged
#   traefik/whoami:v1.10     as the web-app template's default image, whose / and /health it mimics
#   spawnit-test/swarm-node:1  a Docker engine in a container, to run a multi-node Swarm on one
#                            machine (crates/testkit): Debian's dockerd, containerd, runc,
#                            docker-init, docker-proxy, tini, iptables and the docker CLI with the
#                            libraries `ldd` lists, a static busybox, and
#                            scripts/test-images/swarm-node/entrypoint.sh
#   docker:cli               a static busybox and the host's static docker CLI: the image of
#                            SpawnIt's node-cleaning job (scripts/test-images/docker-cli.sh)
#
# Each image is made with `docker import` (no Dockerfile builder needed) and labelled
# spawnit.test-image=<sha256 of its inputs>; an image whose label already matches is left
# alone, so running this again is a fast no-op.
#
# Usage: scripts/test-images.sh [--force] [IMAGE...]   (IMAGE: http-echo, redis, caddy, webapp, swarm-node, docker-cli; default all)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
assets="$here/test-images"
label=spawnit.test-image
std_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

force=false
wanted=()
for arg in "$@"; do
	case $arg in
	--force) force=true ;;
	http-echo | redis | caddy | webapp | swarm-node | docker-cli) wanted+=("$arg") ;;
	-h | --help)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
		exit 0
		;;
	*) echo "test-images: unknown argument: $arg" >&2; exit 2 ;;
	esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=(http-echo redis caddy webapp swarm-node docker-cli)

say() { printf 'test-images: %s\n' "$*" >&2; }

# Installs the Debian packages that are missing (as root, or through sudo).
ensure_packages() {
	local missing=() pkg
	for pkg in "$@"; do
		[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = "install ok installed" ] ||
			missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
	"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
		{ "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

# sha256 of this script, the given files' contents and paths, and extra text.
inputs_hash() {
	local extra=$1
	shift
	{
		sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
		printf '%s\n' "$extra"
		local f
		for f in "$@"; do
			printf '%s %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"
		done
	} | sha256sum | cut -d' ' -f1
}

current_label() {
	docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null || true
}

# import TAG HASH ROOTFS CHANGE...: tars ROOTFS as root-owned files and imports it.
import_rootfs() {
	local tag=$1 hash=$2 rootfs=$3
	shift 3
	local old changes=() c
	old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
	for c in "$@" "LABEL $label=$hash"; do changes+=(--change "$c"); done
	tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . |
		docker import "${changes[@]}" --message "SpawnIt test stand-in for $tag" - "$tag" >/dev/null
	# Drop the image this one replaces, unless a container still uses it.
	if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
		docker image rm "$old" >/dev/null 2>&1 || true
	fi
	say "built $tag ($label=${hash:0:12})"
}

up_to_date() {
	local tag=$1 hash=$2
	if ! $force && [ "$(current_label "$tag")" = "$hash" ]; then
		say "$tag is up to date ($label=${hash:0:12})"
		return 0
	fi
	return 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_http_echo() {
	local tag=hashicorp/http-echo:1.0
	ensure_packages busybox-static
	local busybox=/bin/busybox
	local files=("$busybox" "$assets/http-echo/http-echo" "$assets/http-echo/http-echo-handler")
	local hash
	hash=$(inputs_hash "$tag" "${files[@]}")
	up_to_date "$tag" "$hash" && return 0

	local root="$work/http-echo"
	mkdir -p "$root/bin" "$root/etc" "$root/usr/libexec"
	install -m 0755 "$busybox" "$root/bin/busybox"
	install -m 0755 "$assets/http-echo/http-echo" "$root/http-echo"
	install -m 0755 "$assets/http-echo/http-echo-handler" "$root/usr/libexec/http-echo-handler"
	# The real image is FROM scratch with /etc/passwd and USER scratchuser (uid 1005).
	printf 'root:x:0:0:root:/root:/sbin/nologin\nscratchuser:x:1005:1005::/home/scratchuser:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\nscratchuser:x:1005:\n' >"$root/etc/group"
	import_rootfs "$tag" "$hash" "$root" \
		"ENV PATH=$std_path" \
		"USER scratchuser" \
		'ENTRYPOINT ["/http-echo"]'
}

build_redis() {
	local tag=redis:7
	ensure_packages busybox-static redis-server redis-tools
	local server cli
	server=$(readlink -f /usr/bin/redis-server)
	cli=$(readlink -f /usr/bin/redis-cli)
	# Every library ldd lists (and the dynamic loader), under the path ldd names.
	local libs
	libs=$(ldd "$server" "$cli" | awk '
		$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u)
	local lib_files=()
	local lib
	for lib in $libs; do lib_files+=("$lib"); done
	local files=(/bin/busybox "$server" "$cli" "$assets/redis/docker-entrypoint.sh" "${lib_files[@]}")
	local hash
	hash=$(inputs_hash "$tag" "${files[@]}")
	up_to_date "$tag" "$hash" && return 0

	local root="$work/redis"
	mkdir -p "$root/bin" "$root/etc" "$root/usr/local/bin" "$root/data"
	install -d -m 1777 "$root/tmp"
	install -m 0755 "$server" "$root/usr/local/bin/redis-server"
	install -m 0755 "$cli" "$root/usr/local/bin/redis-cli"
	ln -s redis-server "$root/usr/local/bin/redis-check-aof"
	ln -s redis-server "$root/usr/local/bin/redis-check-rdb"
	ln -s redis-server "$root/usr/local/bin/redis-sentinel"
	install -m 0755 "$assets/redis/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
	for lib in "${lib_files[@]}"; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
	# A static busybox as /bin/sh, its applets in /bin (sh -c health checks, ls, grep...).
	install -m 0755 /bin/busybox "$root/bin/busybox"
	local applet
	for applet in $(/bin/busybox --list); do
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nredis:x:999:999::/home/redis:/sbin/nologin\n' >"$root/etc/passwd"
	printf 'root:x:0:\nredis:x:999:\n' >"$root/etc/group"
	import_rootfs "$tag" "$hash" "$root" \
		"ENV PATH=$std_path" \
		"WORKDIR /data" \
		"VOLUME /data" \
		"EXPOSE 6379" \
		'ENTRYPOINT ["docker-entrypoint.sh"]' \
		'CMD ["redis-server"]'
}

# Every library ldd lists for the given binaries (and the dynamic loader).
libs_of() {
	ldd "$@" | awk '
		$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// && $1 !~ /:$/ { print $1 }' | sort -u
}

# A static busybox in ROOT/bin with every applet linked.
busybox_into() {
	local root=$1 applet
	mkdir -p "$root/bin"
	install -m 0755 /bin/busybox "$root/bin/busybox"
	for applet in $(/bin/busybox --list); do
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done
}

build_caddy() {
	local tag=caddy:2
	ensure_packages busybox-static caddy
	local caddy lib_files=() lib
	caddy=$(readlink -f /usr/bin/caddy)
	for lib in $(libs_of "$caddy"); do lib_files+=("$lib"); done
	local hash
	hash=$(inputs_hash "$tag" /bin/busybox "$caddy" "${lib_files[@]}")
	up_to_date "$tag" "$hash" && return 0

	local root="$work/caddy"
	mkdir -p "$root/usr/bin" "$root/etc/caddy" "$root/config/caddy" "$root/data/caddy" "$root/srv"
	install -d -m 1777 "$root/tmp"
	install -m 0755 "$caddy" "$root/usr/bin/caddy"
	for lib in "${lib_files[@]}"; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
	busybox_into "$root"
	printf ':80 {\n\trespond "Caddy works!"\n}\n' >"$root/etc/caddy/Caddyfile"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"
	import_rootfs "$tag" "$hash" "$root" \
		"ENV PATH=$std_path" \
		"ENV XDG_CONFIG_HOME=/config" \
		"ENV XDG_DATA_HOME=/data" \
		"WORKDIR /srv" \
		"EXPOSE 80 443 2019" \
		'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]'
}

build_webapp() {
	ensure_packages busybox-static
	local files=(/bin/busybox "$assets/webapp/webapp" "$assets/webapp/index.cgi")
	local variant
	for variant in 1 2 unhealthy; do
		local tag=spawnit-test/webapp:$variant
		local hash
		hash=$(inputs_hash "$tag" "${files[@]}")
		up_to_date "$tag" "$hash" && continue
		local root="$work/webapp-$variant"
		mkdir -p "$root/www/cgi-bin" "$root/etc"
		install -d -m 1777 "$root/tmp"
		busybox_into "$root"
		install -m 0755 "$assets/webapp/webapp" "$root/webapp"
		install -m 0755 "$assets/webapp/index.cgi" "$root/www/cgi-bin/index.cgi"
		mkdir -p "$root/www/burn"
		[ "$variant" = unhealthy ] || echo ok >"$root/www/health"
		printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
		printf 'root:x:0:\n' >"$root/etc/group"
		local version=$variant
		[ "$variant" = unhealthy ] && version=3
		import_rootfs "$tag" "$hash" "$root" \
			"ENV PATH=$std_path" \
			"ENV APP_VERSION=$version" \
			"EXPOSE 80" \
			'ENTRYPOINT ["/webapp"]'
	done
	# The web-app template's default image: the stand-in answers / and /health as it does.
	docker tag spawnit-test/webapp:1 traefik/whoami:v1.10
}

build_swarm_node() {
	local tag=spawnit-test/swarm-node:1
	ensure_packages busybox-static docker.io containerd runc tini iptables
	local bins=(/usr/sbin/dockerd /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/sbin/runc
		/usr/bin/docker-init /usr/sbin/docker-proxy /usr/bin/tini /usr/sbin/xtables-legacy-multi)
	local cli
	cli=$(command -v docker)
	local lib_files=() lib
	for lib in $(libs_of "${bins[@]}" "$cli" /usr/lib/x86_64-linux-gnu/xtables/*.so 2>/dev/null); do lib_files+=("$lib"); done
	local hash
	hash=$(inputs_hash "$tag" /bin/busybox "$cli" "${bins[@]}" "$assets/swarm-node/entrypoint.sh")
	up_to_date "$tag" "$hash" && return 0

	local root="$work/swarm-node" bin
	mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/local/bin" "$root/etc" "$root/var/lib/docker" "$root/usr/lib/x86_64-linux-gnu"
	install -d -m 1777 "$root/tmp"
	busybox_into "$root"
	for bin in "${bins[@]}"; do install -m 0755 "$(readlink -f "$bin")" "$root$bin"; done
	install -m 0755 "$cli" "$root/usr/bin/docker"
	for lib in "${lib_files[@]}"; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
	cp -a /usr/lib/x86_64-linux-gnu/xtables "$root/usr/lib/x86_64-linux-gnu/"
	for bin in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
		ln -sf xtables-legacy-multi "$root/usr/sbin/$bin"
	done
	install -m 0755 "$assets/swarm-node/entrypoint.sh" "$root/usr/local/bin/swarm-node"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"
	printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
	import_rootfs "$tag" "$hash" "$root" \
		"ENV PATH=$std_path" \
		"VOLUME /var/lib/docker" \
		'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/swarm-node"]'
}

# shellcheck source=test-images/docker-cli.sh
. "$assets/docker-cli.sh"

command -v docker >/dev/null || { say "docker is not installed"; exit 1; }
docker info >/dev/null 2>&1 || { say "cannot reach the Docker engine"; exit 1; }

# One build at a time when several test runs start together.
if command -v flock >/dev/null; then
	exec 9>"${TMPDIR:-/tmp}/spawnit-test-images.lock"
	flock 9
fi

for image in "${wanted[@]}"; do
	case $image in
	http-echo) build_http_echo ;;
	redis) build_redis ;;
	caddy) build_caddy ;;
	webapp) build_webapp ;;
	swarm-node) build_swarm_node ;;
	docker-cli) build_docker_cli ;;
	esac
done
