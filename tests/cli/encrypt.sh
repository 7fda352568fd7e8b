#!/bin/bash
# qcowkit with AES-encrypted images: --object secret, --image-opts,
# -o encrypt.*, -U; the error cases and their one-line messages.
set -euo pipefail
source "$(dirname "$0")/../harness/functions.sh"
requires_qcowkit
enter_tmpdir

S="--object secret,id=s,data=pw"
O="driver=qcow,file.filename=e.qcow,encrypt.key-secret=s"

# ------------------------------------------------------------- creating
expect_rc 0 "$Q" create -f qcow $S -o encrypt.format=aes,encrypt.key-secret=s e.qcow 1M
expect_out "Formatting 'e.qcow', fmt=qcow size=1048576 encrypt.format=aes encrypt.key-secret=s"
expect_err "warning: qcow AES encryption is weak and deprecated"
expect_rc 0 "$Q" create -q -f qcow $S -o encryption=on,encrypt.key-secret=s e2.qcow 1M
expect_out ""
cmp e.qcow e2.qcow || fail "encryption=on and encrypt.format=aes differ"
expect_rc 0 "$Q" info e.qcow
grep -q '^encrypted: yes$' out || fail "info: $(cat out)"

expect_rc 1 "$Q" create -f qcow -o encrypt.format=aes x.qcow 1M
expect_err "^qcowkit: x.qcow: Parameter 'encrypt.key-secret' is required for cipher$"
expect_rc 1 "$Q" create -f qcow $S -o encrypt.format=aes,encrypt.key-secret=nope x.qcow 1M
expect_err "^qcowkit: x.qcow: No secret with id 'nope'$"
expect_rc 1 "$Q" create -f qcow $S -o encrypt.format=luks,encrypt.key-secret=s x.qcow 1M
expect_err "^qcowkit: x.qcow: Unsupported encryption format$"
expect_rc 1 "$Q" create -f qcow $S -o encryption=on,encrypt.format=aes,encrypt.key-secret=s x.qcow 1M
expect_err "'encrypt.format' and its alias 'encryption' can't be used at the same time"
expect_rc 1 "$Q" create -f qcow $S -o encryption=maybe,encrypt.key-secret=s x.qcow 1M
expect_err "Parameter 'encryption' expects 'on' or 'off'"
expect_rc 1 "$Q" create -f qcow $S -o encrypt.key-secret=s x.qcow 1M
expect_err "Parameter 'encrypt.format' is missing"
expect_rc 1 "$Q" create -f raw $S -o encrypt.format=aes,encrypt.key-secret=s x.raw 1M
expect_err "Invalid parameter 'encrypt.format'"
expect_rc 0 "$Q" create -f qcow -o help
grep -q "encrypt.key-secret" out || fail "create -o help: $(cat out)"

# --------------------------------------------------------------- --object
expect_rc 1 "$Q" info --object secret,data=x e.qcow
expect_err "^qcowkit: Parameter 'id' is missing$"
expect_rc 1 "$Q" info --object secret,id=a e.qcow
expect_err "Either 'file' or 'data' must be provided"
expect_rc 1 "$Q" info --object secret,id=a,data=x,file=f e.qcow
expect_err "'file' and 'data' are mutually exclusive"
expect_rc 1 "$Q" info --object secret,id=a,data=x --object secret,id=a,data=y e.qcow
expect_err "duplicate property 'a'"
expect_rc 1 "$Q" info --object secret,id=a,file=/nonexistent e.qcow
expect_err "^qcowkit: Unable to read /nonexistent"
expect_rc 1 "$Q" info --object iothread,id=a e.qcow
expect_err "Parameter 'qom-type' does not accept value 'iothread'"
expect_rc 1 "$Q" info --object secret,id=a,data=x,bogus=1 e.qcow
expect_err "Parameter 'bogus' is unexpected"
expect_rc 1 "$Q" info --object secret,id=a,data=@@@@,format=base64 e.qcow
expect_err "Base64 data contains invalid characters"
expect_rc 0 "$Q" info --object qom-type=secret,id=a,data=x e.qcow

# The same key from data=, file= (no newline) and base64; a newline at
# the end of a file is part of the password, as in QEMU.
expect_rc 0 "$Q" io $S --image-opts -c 'write -q -P 0x5a 0 64k' "$O"
printf 'pw' >pw.txt
printf 'pw\n' >pw-nl.txt
expect_rc 0 "$Q" io -r --object secret,id=s,file=pw.txt --image-opts -c 'read -q -P 0x5a 0 64k' "$O"
expect_rc 0 "$Q" io -r --object secret,id=s,data=cHc=,format=base64 --image-opts -c 'read -q -P 0x5a 0 64k' "$O"
expect_rc 1 "$Q" io -r --object secret,id=s,file=pw-nl.txt --image-opts -c 'read -q -P 0x5a 0 512' "$O"
grep -q "Pattern verification failed" out || fail "newline key: $(cat out)"
printf 'p\377' >bad.txt
expect_rc 1 "$Q" io -r --object secret,id=s,file=bad.txt --image-opts -c 'read 0 512' "$O"
expect_err "Data from secret s is not valid UTF-8"

# ----------------------------------------------------------- image-opts
expect_rc 1 "$Q" info -f qcow --image-opts "$O"
expect_err "^qcowkit: --image-opts and --format are mutually exclusive$"
expect_rc 1 "$Q" info --image-opts "$O,foo=bar"
expect_err "Block format 'qcow' does not support the option 'foo'"
expect_rc 1 "$Q" info --image-opts driver=qcow,encrypt.key-secret=s
expect_err "A block device must be specified for \"file\""
expect_rc 1 "$Q" info --image-opts driver=raw,file.filename=e.qcow,encrypt.key-secret=s
expect_err "Block format 'raw' does not support the option 'encrypt.key-secret'"
expect_rc 1 "$Q" info --image-opts driver=vmdk,file.filename=e.qcow
expect_err "Unknown driver 'vmdk'"
expect_rc 1 "$Q" info --image-opts driver=qcow,file.driver=nbd,file.filename=e.qcow
expect_err "Unknown protocol driver 'nbd'"
expect_rc 1 "$Q" info $S --image-opts "$O,encrypt.format=luks"
expect_err "Header reported 'aes' encryption format but options specify 'luks'"
"$Q" create -q -f qcow p.qcow 1M
expect_rc 1 "$Q" info --image-opts driver=qcow,file.filename=p.qcow,encrypt.format=aes
expect_err "No encryption in image header, but options specified format 'aes'"
expect_rc 0 "$Q" info --image-opts driver=qcow,file.driver=file,file.filename=p.qcow
grep -q '^image: p.qcow$' out || fail "info image-opts name: $(cat out)"
# QEMU names an image opened with a key secret json:{...}; info needs no key.
expect_rc 0 "$Q" info --image-opts "driver=qcow,file.filename=e.qcow,encrypt.key-secret=unknown"
grep -q '^image: json:{"encrypt.key-secret": "unknown", "driver": "qcow", "file": {"driver": "file", "filename": "e.qcow"}}$' out ||
    fail "info json name: $(cat out)"
# A key secret on an unencrypted image is ignored, as in QEMU.
expect_rc 0 "$Q" io -r --image-opts -c 'read -q 0 512' driver=qcow,file.filename=p.qcow,encrypt.key-secret=nope

# ----------------------------------------------------- unknown secret id
expect_rc 1 "$Q" io $S --image-opts -c 'read 0 512' driver=qcow,file.filename=e.qcow,encrypt.key-secret=zz
expect_err "^qcowkit: Could not open 'driver=qcow,file.filename=e.qcow,encrypt.key-secret=zz': No secret with id 'zz'$"
expect_rc 1 "$Q" convert $S --image-opts -O raw driver=qcow,file.filename=e.qcow,encrypt.key-secret=zz o.raw
expect_err "No secret with id 'zz'"
expect_rc 1 "$Q" map $S --image-opts driver=qcow,file.filename=e.qcow,encrypt.key-secret=zz
expect_err "No secret with id 'zz'"
expect_rc 2 "$Q" compare $S --image-opts driver=qcow,file.filename=e.qcow,encrypt.key-secret=zz "$O"
expect_err "No secret with id 'zz'"

# ----------------------------------------------------------- missing key
for cmd in "io -c read\ 0\ 512" "io -r -c read\ 0\ 512" "convert -O raw"; do
    eval "set -- $cmd"
    if [ "$1" = convert ]; then
        expect_rc 1 "$Q" "$@" e.qcow o.raw
    else
        expect_rc 1 "$Q" "$@" e.qcow
    fi
    expect_err "^qcowkit: Could not open 'e.qcow': Parameter 'encrypt.key-secret' is required for cipher"
done
expect_rc 2 "$Q" compare e.qcow e.qcow
expect_err "Parameter 'encrypt.key-secret' is required for cipher"
# A plain overlay over an encrypted backing file needs the key too.
expect_rc 0 "$Q" create -q -f qcow -b e.qcow -F qcow ov.qcow
expect_rc 1 "$Q" convert -O raw ov.qcow o.raw
expect_err "Parameter 'encrypt.key-secret' is required for cipher"
expect_rc 0 "$Q" convert $S --image-opts -O raw driver=qcow,file.filename=ov.qcow,backing.encrypt.key-secret=s o.raw
# info needs no key; map does, as in qemu-img.
expect_rc 0 "$Q" info e.qcow
expect_rc 1 "$Q" map --output=json e.qcow
expect_err "^qcowkit: Could not open 'e.qcow': Parameter 'encrypt.key-secret' is required for cipher"
expect_rc 0 "$Q" map --output=json $S --image-opts "$O"
expect_rc 1 "$Q" map $S --image-opts "$O"
expect_err "File contains external, encrypted or compressed clusters."

# ------------------------------------------------- compressed writes
expect_rc 1 "$Q" io $S --image-opts -c 'write -c 0 4k' "$O"
expect_err "^qcowkit: write failed: Compression and encryption not supported at the same time$"
expect_out ""
expect_rc 1 "$Q" convert -c $S --image-opts -O qcow -o encrypt.format=aes,encrypt.key-secret=s "$O" c.qcow
expect_err "^qcowkit: Compression and encryption not supported at the same time$"
[ ! -e c.qcow ] || fail "convert -c created the target"

# -------------------------------------------------------------------- -U
expect_rc 1 "$Q" io -U -c 'read 0 512' p.qcow
expect_err "^qcowkit: can't open device p.qcow: force-share=on can only be used with read-only images$"
expect_rc 1 "$Q" io -U $S --image-opts -c 'read 0 512' "$O"
expect_err "^qcowkit: can't open: force-share=on can only be used with read-only images$"
expect_rc 0 "$Q" io -U -r $S --image-opts -c 'read -q -P 0x5a 0 4k' "$O"
expect_rc 0 "$Q" io --force-share -r -c 'read -q 0 512' p.qcow

# -U lets readers in while a writer holds the image (as qemu-img -U).
mkfifo cmds
"$Q" io p.qcow <cmds >/dev/null 2>&1 &
writer=$!
exec 3>cmds
for _ in $(seq 50); do
    "$Q" info p.qcow >/dev/null 2>&1 || break
    sleep 0.1
done
expect_rc 1 "$Q" info p.qcow
expect_rc 0 "$Q" info -U p.qcow
expect_rc 0 "$Q" map -U p.qcow
expect_rc 0 "$Q" compare -U p.qcow p.qcow
expect_rc 0 "$Q" convert -U -O raw p.qcow u.raw
expect_rc 0 "$Q" io -U -r -c 'read -q 0 512' p.qcow
expect_rc 0 "$Q" info --force-share p.qcow
echo quit >&3
exec 3>&-
wait "$writer"

echo "ok"
