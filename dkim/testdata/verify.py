# Verifies every DKIM signature of the message on stdin with dkimpy, the
# TXT records given as arguments (NAME RECORD ...) standing in for DNS.
# Prints one line per signature, "ok d=... s=... h=..." or "fail ...",
# and exits 1 when any fails.
import sys

import dkim

records = dict(zip(sys.argv[1::2], sys.argv[2::2]))


def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    record = records.get(name.rstrip("."))
    return record.encode() if record is not None else None


msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
count = sum(1 for k, _ in d.headers if k.lower() == b"dkim-signature")
if count == 0:
    print("fail: no signature")
    sys.exit(1)
failed = False
for i in range(count):
    ok = d.verify(idx=i, dnsfunc=dnsfunc)
    tags = d.signature_fields
    line = "d=%s s=%s h=%s" % (
        tags.get(b"d", b"").decode(),
        tags.get(b"s", b"").decode(),
        tags.get(b"h", b"").decode().replace(" ", ""),
    )
    print(("ok " if ok else "fail ") + line)
    failed = failed or not ok
sys.exit(1 if failed else 0)
