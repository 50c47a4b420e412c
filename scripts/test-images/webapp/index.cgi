#!/bin/sh
# GET /                 → which replica answered (like traefik/whoami: "Hostname: …")
# GET /burn?seconds=N   → burns one core for N seconds (1 to 600, default 5), then answers
case "$REQUEST_URI" in
/burn*)
	seconds=$(printf '%s' "$QUERY_STRING" | sed -n 's/.*seconds=\([0-9][0-9]*\).*/\1/p')
	[ -n "$seconds" ] || seconds=5
	[ "$seconds" -gt 600 ] && seconds=600
	end=$(($(date +%s) + seconds))
	i=0
	while [ "$(date +%s)" -lt "$end" ]; do
		n=0
		while [ $n -lt 20000 ]; do n=$((n + 1)); done
		i=$((i + 1))
	done
	printf 'Content-Type: text/plain\r\n\r\nburned %s s on %s\n' "$seconds" "$(hostname)"
	;;
*)
	printf 'Content-Type: text/plain\r\n\r\nHostname: %s\nVersion: %s\n' "$(hostname)" "${APP_VERSION:-1}"
	;;
esac
