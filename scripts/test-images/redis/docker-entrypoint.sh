#!/bin/sh
# SpawnIt test stand-in for the entrypoint of the official redis:7 image
# (built by scripts/test-images.sh from Debian's redis-server and redis-tools).
set -e

# First argument is an option (`--port 7000`) or a config file: run redis-server with it.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# The official image builds Redis with protected mode off (it is unneeded behind Docker's
# port publishing); Debian's binary defaults to on, so turn it off here, before the
# caller's own options (after a config file, which must stay the first argument).
if [ "$1" = redis-server ]; then
	shift
	if [ $# -gt 0 ] && { [ "${1%.conf}" != "$1" ] || [ "$1" = - ]; }; then
		conf=$1
		shift
		set -- redis-server "$conf" --protected-mode no "$@"
	else
		set -- redis-server --protected-mode no "$@"
	fi
fi

# Unlike the official image this one does not switch to the `redis` user (there is no
# gosu here): Redis runs as root, or as whatever --user the container was given.

# Set an appropriate umask (if one isn't set already), as the official image does.
if [ "$(umask)" = 0022 ]; then
	umask 0077
fi

exec "$@"
