#!/bin/bash
# A FLUSH makes durable every WRITE replied to before it (issue 8).  A
# client sends a 32 MiB WRITE over allocated clusters (an in-place write,
# whose transfer runs without the image lock) and a FLUSH together, waits
# for both replies, then sends another FLUSH.  The server runs under
# strace: in each round, some fdatasync must begin after the WRITE's
# pwrite finished and before the last FLUSH was answered.  Before the fix
# the first FLUSH, run during the transfer, synced and cleared the
# "unsynced" mark, and the last FLUSH synced nothing.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir
requires strace
NBDPY=$(nbd_python)
if [ -z "$NBDPY" ]; then
    echo "no python with libnbd (python3-libnbd); skipping" >&2
    exit 77
fi
if ! strace -f -qq -o /dev/null -e trace=fdatasync true 2>/dev/null; then
    echo "strace cannot trace processes here (ptrace refused); skipping" >&2
    exit 77
fi
ROUNDS=${QCOWKIT_FLUSH_ROUNDS:-6}

# 64 KiB clusters: one L2 table spans 512 MiB, so the 32 MiB write is a
# single contiguous in-place transfer (one pwrite).
"$Q" create -q -f qcow -o cluster_size=65536 img.qcow 64M
"$Q" io -c 'write -P 0x11 0 32M' img.qcow >/dev/null

# LeakSanitizer cannot run under ptrace; the other NBD tests check leaks.
cat >traced <<EOF
#!/bin/bash
export ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0"
exec strace -f -qq -ttt -T -e trace=pwrite64,fdatasync,fsync \
    -o "$T/trace.log" "$Q" "\$@"
EOF
chmod +x traced
Q="$T/traced" start_nbd a -k "$T/a.sock" img.qcow
A=$PID
SERVERS+=("$(cat "$T/a.pid")")

"$NBDPY" - <<PY || fail "libnbd client"
import json, time, nbd
h = nbd.NBD()
h.connect_uri("$(uri a)")
rounds = []
for r in range($ROUNDS):
    data = bytes([0x20 + r]) * (32 << 20)
    t0 = time.time()
    cookies = [h.aio_pwrite(data, 0), h.aio_flush()]
    for c in cookies:
        while not h.aio_command_completed(c):
            h.poll(-1)
    t1 = time.time()
    h.flush()
    rounds.append([t0, t1, time.time()])
assert h.pread(65536, (32 << 20) - 65536) == bytes([0x20 + $ROUNDS - 1]) * 65536
h.shutdown()
json.dump(rounds, open("rounds.json", "w"))
PY
wait_exit "$A"
[ "$RC" = 0 ] || fail "server exited $RC: $(cat a.err)"

python3 - trace.log rounds.json <<'PY' || fail "a FLUSH left a completed WRITE unsynced"
import json, re, sys

# "PID TIME name(args) = ret <dur>", or split in "<unfinished ...>" and
# "<... name resumed>" lines; TIME is when the call began.
line_re = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
writes, syncs, pending = [], [], {}
for line in open(sys.argv[1]):
    m = line_re.match(line)
    if not m:
        continue
    pid, ts, rest = m.group(1), float(m.group(2)), m.group(3)
    dur = re.search(r"<(\d+\.\d+)>$", rest)
    if rest.startswith("<..."):
        call, ts0 = pending.pop(pid, (None, None))
        if call == "write" and dur:
            writes.append((ts0, ts0 + float(dur.group(1))))
        continue
    name = rest.split("(", 1)[0]
    if name in ("fdatasync", "fsync"):
        syncs.append(ts)
    elif name == "pwrite64":
        size = int(re.match(r"pwrite64\(\d+, .*, (\d+), \d+", rest).group(1))
        if size < (1 << 20):
            continue  # tables, not the data
        if rest.endswith("<unfinished ...>"):
            pending[pid] = ("write", ts)
        elif dur:
            writes.append((ts, ts + float(dur.group(1))))

bad = 0
for i, (t0, t1, t2) in enumerate(json.load(open(sys.argv[2]))):
    ends = [e for s, e in writes if t0 <= s <= t1]
    if not ends:
        print(f"round {i}: no data write seen in the trace")
        bad += 1
        continue
    done = max(ends)
    later = [s for s in syncs if done < s < t2]
    during = [s for s in syncs if t0 <= s <= done]
    print(f"round {i}: syncs during the write {len(during)}, "
          f"after it {len(later)}")
    if not later:
        print(f"round {i}: no sync after the WRITE completed, yet both "
              "FLUSHes returned")
        bad += 1
sys.exit(1 if bad else 0)
PY
echo "flush: ok"
