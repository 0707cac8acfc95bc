#!/usr/bin/env bash
# A hearth cluster on this machine: a three-node NATS cluster (JetStream, the store keeps
# three copies), three hosts and a controller, all on loopback. It applies
# deployment.yaml (3 replicas), prints where they run and answers through every host,
# then waits (Ctrl-C stops everything).
#
#   examples/cluster/run.sh            # build (release) and run
#   HEARTH=target/debug/hearth examples/cluster/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
cd "$root"
scripts/setup
if [ -z "${HEARTH:-}" ]; then
  echo "==> building hearth (release)"
  cargo build --release -p hearth-cli --quiet
  HEARTH=target/release/hearth
fi
NATS="${NATS_SERVER:-$root/.tools/venv/bin/nats-server}"
work="$(mktemp -d /tmp/hearth-cluster.XXXXXX)"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

urls=""
for i in 1 2 3; do
  cat > "$work/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((4221 + i))
jetstream { store_dir: "$work/n$i", max_memory_store: 64MB, max_file_store: 256MB }
cluster { name: hearth, listen: 127.0.0.1:$((6221 + i)), routes: [nats-route://127.0.0.1:6222, nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224] }
CONF
  "$NATS" -c "$work/n$i.conf" > "$work/n$i.log" 2>&1 &
  pids+=($!)
  urls="${urls:+$urls,}nats://127.0.0.1:$((4221 + i))"
done
echo "==> NATS cluster: $urls"

for i in 1 2 3; do
  "$HEARTH" host --nats "$urls" --host-id "host-$i" --label "zone=z$i" \
    --http "127.0.0.1:$((8080 + i))" > "$work/host-$i.log" 2>&1 &
  pids+=($!)
done
"$HEARTH" controller --nats "$urls" --id controller-1 > "$work/controller.log" 2>&1 &
pids+=($!)
echo "==> hosts on http://127.0.0.1:8081 .. 8083, a controller; logs in $work"

# JetStream elects its leaders first; apply once the store answers.
for _ in $(seq 1 60); do
  "$HEARTH" get deployments --cluster "$urls" > /dev/null 2>&1 && break
  sleep 0.5
done
"$HEARTH" apply -f "$here/deployment.yaml" --cluster "$urls"
for _ in $(seq 1 60); do
  ready=$("$HEARTH" get deployments hello --cluster "$urls" -o json | grep -o '"availableReplicas": [0-9]*' | grep -o '[0-9]*$' || true)
  [ "${ready:-0}" = 3 ] && break
  sleep 0.5
done
echo
"$HEARTH" get deployments --cluster "$urls"
echo
"$HEARTH" get replicas --cluster "$urls"
echo
"$HEARTH" get hosts --cluster "$urls"
echo
for i in 1 2 3; do
  printf 'via host-%s: %s\n' "$i" "$(curl -s "http://127.0.0.1:$((8080 + i))/")"
done
echo
echo "==> try: $HEARTH scale hello --replicas 6 --cluster $urls"
echo "          kill a host (kill ${pids[3]}) and watch: $HEARTH get replicas --cluster $urls"
echo "    Ctrl-C to stop."
wait
