"""Writes a gzip-compressed tar of COUNT one-byte files below FOLDER, a
thousand to a sub-folder (FOLDER/d000/f000000 ...), with a folder entry for
each: a container image layer that is cheap to send and slow to unpack, for
the deadline test of tests/it/hostile.rs.

The ustar headers are written here in one pass from a template (tarfile's
TarInfo per entry is several times slower): 200,000 entries take about a
second, most of it gzip.

usage: make_wide_tar.py OUT COUNT FOLDER
"""
import gzip
import sys

out, count, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3].strip("/")
PER_FOLDER = 1000


def header(name, size, typeflag, mode):
    """A ustar header block for `name` (under 100 bytes), mtime 0, root."""
    h = bytearray(512)
    raw = name.encode()
    h[0:len(raw)] = raw
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


content = b"x" + b"\0" * 511  # one byte, padded to a block
with gzip.open(out, "wb", compresslevel=1) as tar:
    tar.write(header(folder + "/", 0, b"5", 0o755))
    parts = []
    for i in range(count):
        if i % PER_FOLDER == 0:
            parts.append(header(f"{folder}/d{i // PER_FOLDER:03}/", 0, b"5", 0o755))
        parts.append(header(f"{folder}/d{i // PER_FOLDER:03}/f{i:06}", 1, b"0", 0o644))
        parts.append(content)
        if len(parts) >= 8192:
            tar.write(b"".join(parts))
            parts.clear()
    tar.write(b"".join(parts))
    tar.write(b"\0" * 1024)
