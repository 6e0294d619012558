"""Writes a tar archive with exactly the entries given, hostile ones
included, for the tar-layer tests.

usage: make_tar.py OUT SPEC.json     (OUT ending in .gz is gzip-compressed)
SPEC.json: [{"name": "a/b", "type": "file|dir|symlink|hardlink|chardev|fifo",
             "content": "text" | "@/path/to/file", "target": "...", "mode": 420}]
"""
import io
import json
import sys
import tarfile

out, spec = sys.argv[1], json.load(open(sys.argv[2]))
kinds = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
         "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}
with tarfile.open(out, "w:gz" if out.endswith(".gz") else "w", format=tarfile.PAX_FORMAT) as tar:
    for e in spec:
        info = tarfile.TarInfo(e["name"])
        info.type = kinds[e.get("type", "file")]
        info.mode = e.get("mode", 0o755 if info.type == tarfile.DIRTYPE else 0o644)
        data = None
        if info.type == tarfile.REGTYPE:
            content = e.get("content", "")
            data = open(content[1:], "rb").read() if content.startswith("@") else content.encode()
            info.size = len(data)
        if "target" in e:
            info.linkname = e["target"]
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
