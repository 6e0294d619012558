"""A FUSE file system that lies about file sizes, for tests/it/attacks.rs.

It serves the files of SOURCE (read-only) at MOUNTPOINT, except that the
file named LIAR:
  short   is reported (stat) as its true size but reads end at half of it
  long    is reported as its true size but reads return 4096 more bytes
  grows   is reported as half its true size, and reads return all of it
  zero    is reported as 0 bytes, and reads return all of it (like /proc)

usage: lying_fs.py SOURCE MOUNTPOINT LIAR MODE
Runs in the foreground until unmounted (fusermount -u, or umount).
Needs fusepy (PyPI) and libfuse2 (Debian).
"""
import errno
import os
import stat
import sys

from fuse import FUSE, FuseOSError, Operations

source, mountpoint, liar, mode = sys.argv[1:5]


class Lying(Operations):
    def _path(self, path):
        return os.path.join(source, path.lstrip("/"))

    def _lies(self, path):
        return path.lstrip("/") == liar

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._path(path))
        except FileNotFoundError:
            raise FuseOSError(errno.ENOENT)
        attrs = {k: getattr(st, k) for k in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
            "st_atime", "st_mtime", "st_ctime")}
        if self._lies(path) and stat.S_ISREG(st.st_mode):
            if mode == "grows":
                attrs["st_size"] = st.st_size // 2
            elif mode == "zero":
                attrs["st_size"] = 0
        return attrs

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        return os.open(self._path(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        data = os.pread(fh, size, offset)
        if self._lies(path):
            true_size = os.fstat(fh).st_size
            if mode == "short":
                end = true_size // 2
                data = data[: max(0, end - offset)] if offset < end else b""
            elif mode == "long" and offset + len(data) >= true_size:
                extra_from = max(0, offset - true_size)
                data += b"\0" * max(0, min(size - len(data), 4096 - extra_from))
        return data

    def release(self, path, fh):
        os.close(fh)


if __name__ == "__main__":
    # Through the page cache, as a real FUSE mount of a model would be: the
    # kernel bounds every read, mmap included, by the size getattr reports.
    FUSE(Lying(), mountpoint, foreground=True, ro=True, allow_other=True)
