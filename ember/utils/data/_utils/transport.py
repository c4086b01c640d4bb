"""How a worker process hands a fetched batch to the main process.

A message is pickled with protocol 5; NumPy arrays (and so ember Tensors, which pickle as
their array) of at least ``INLINE_MAX`` bytes leave the pickle as out-of-band buffers and are
written, back to back, into one fresh shared-memory file. Only the small pickle goes through
the worker's connection, followed by the file itself as a descriptor: on Linux the file is an
anonymous ``memfd`` and the connection a Unix socket, so the descriptor travels by
SCM_RIGHTS (as PyTorch passes its shared-memory fds) and the file never has a name; nothing
can be left behind in ``/dev/shm``, whoever is killed when. Elsewhere (no memfd or no socket)
the file is ``/dev/shm/<prefix><n>`` and the main process unlinks it as soon as it opens it
(``unlink_prefix`` sweeps what a crash left). The main process maps the file (the memory
lives as long as the tensors built on it) and unpickles onto the mapping, so large arrays are
never copied through the pipe nor in Python.

Measured on the 2-core development machine (loaded by other jobs, so rough): forked producer
-> consumer that reads every byte, per batch: 128x784 float32 (0.4 MB): ``mp.Queue`` (pickle
in band) ~1.1 ms, protocol-5 buffers sent through the pipe 0.63-0.7 ms, this shared-memory
path 0.5-0.65 ms; 128x3x64x64 float32 (6.3 MB): ``mp.Queue`` 22-45 ms, pipe 9-13 ms, shared
memory 7-9 ms. End to end, 2 persistent workers stacking 64 samples of 3x64x64 float32:
2.7-3.2 ms/batch with shared memory, 8.2-8.6 ms/batch everything through the pipe, torch's
DataLoader 5.0-5.2 ms/batch. A full ``/dev/shm`` (or none) falls back to the pipe: the
worker writes the file with ``writev``, which fails with an error instead of the SIGBUS a
store into an unbacked mapping would give.
"""
from __future__ import annotations

import mmap
import os
import pickle
import stat

SHM_DIR = "/dev/shm"
INLINE_MAX = 64 * 1024  # smaller buffers stay in the pickle: a file costs more than the copy
_ALIGN = 64
_IOV_MAX = 512
_VIA_FD = "<fd>"  # the header's "path" when the file follows as a descriptor


def _is_socket(conn) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(conn.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def _fd_passing(conn) -> bool:
    """Whether files can travel as descriptors: memfd (Linux) and a Unix-socket connection."""
    return hasattr(os, "memfd_create") and _is_socket(conn)


def _reduction():
    import multiprocessing.reduction  # on first use (see _borrow_socket)
    return multiprocessing.reduction


def _borrow_socket(conn):
    """A socket object on ``conn``'s descriptor (``detach()`` it, never close it)."""
    import socket  # on first use: socket and multiprocessing cost `import ember` ~5 ms
    return socket.socket(fileno=conn.fileno())


def shm_available() -> bool:
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK | os.X_OK)


def _write_all(fd, pieces):
    """``writev`` every piece, finishing any short write piece by piece."""
    for start in range(0, len(pieces), _IOV_MAX):
        chunk = pieces[start:start + _IOV_MAX]
        done = os.writev(fd, chunk)
        total = sum(memoryview(p).nbytes for p in chunk)
        if done < total:  # rare (signals, >2 GiB): write what is left
            for p in chunk:
                p = memoryview(p).cast("B")
                if done >= p.nbytes:
                    done -= p.nbytes
                    continue
                p = p[done:]
                done = 0
                while p.nbytes:
                    p = p[os.write(fd, p):]


class Sender:
    """The worker's end: ``send(obj)`` pickles ``obj`` and ships it as described above."""

    def __init__(self, conn, prefix):
        self.conn = conn
        self.prefix = prefix  # file-name prefix in SHM_DIR, or None: no /dev/shm files
        self.fds = _fd_passing(conn)
        self.seq = 0

    def send(self, obj):
        bufs = []

        def out_of_band(pb):
            if self.prefix is None and not self.fds:
                return True
            raw = pb.raw()
            if raw.nbytes < INLINE_MAX:
                return True  # in band
            bufs.append(raw)
            return False

        head = pickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
        path, layout, fd = None, (), None
        if bufs:
            try:
                if self.fds:
                    fd, layout = self._write_memfd(bufs)
                    path = _VIA_FD
                else:
                    path, layout = self._write(bufs)
            except OSError:  # shared memory full or gone: everything through the pipe instead
                head = pickle.dumps(obj, protocol=5)
        try:
            self.conn.send_bytes(pickle.dumps((head, path, layout), protocol=5))
            if fd is not None:  # right behind its message, so the receiver takes it next
                sock = _borrow_socket(self.conn)
                try:
                    _reduction().sendfds(sock, [fd])
                finally:
                    sock.detach()
        finally:
            if fd is not None:
                os.close(fd)  # the receiver holds its own descriptor (or it died: freed)

    @staticmethod
    def _pieces(bufs):
        layout, pieces, off = [], [], 0
        for raw in bufs:
            n = raw.nbytes
            layout.append((off, n))
            pieces.append(raw)
            pad = -n % _ALIGN
            if pad:
                pieces.append(bytes(pad))
            off += n + pad
        return layout, pieces

    def _write_memfd(self, bufs):
        layout, pieces = self._pieces(bufs)
        fd = os.memfd_create("ember_dl", os.MFD_CLOEXEC)
        try:
            _write_all(fd, pieces)
        except BaseException:
            os.close(fd)
            raise
        return fd, layout

    def _write(self, bufs):
        path = f"{SHM_DIR}/{self.prefix}{self.seq}"
        self.seq += 1
        layout, pieces = self._pieces(bufs)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            _write_all(fd, pieces)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        return path, layout


def decode(message: bytes, conn=None):
    """The main process's end: rebuild the object a ``Sender`` sent on ``conn`` (needed when
    the message's file follows it as a descriptor)."""
    head, path, layout = pickle.loads(message)
    if path is None:
        return pickle.loads(head)
    if path == _VIA_FD:
        if conn is None:
            raise RuntimeError("a DataLoader message whose data follows as a file descriptor "
                               "was decoded without its connection")
        sock = _borrow_socket(conn)
        try:
            fd, = _reduction().recvfds(sock, 1)
        finally:
            sock.detach()
    else:
        try:
            fd = os.open(path, os.O_RDWR)
        finally:
            os.unlink(path)  # opened (or unopenable): the name is not needed any more
    try:
        size = os.fstat(fd).st_size
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        m = mmap.mmap(fd, size, flags=flags)
    finally:
        os.close(fd)
    mv = memoryview(m)
    return pickle.loads(head, buffers=[mv[o:o + n] for o, n in layout])


def unlink_prefix(prefix: str) -> None:
    """Remove files left under ``prefix`` by messages never received (shutdown, crash)."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join(SHM_DIR, name))
            except OSError:
                pass
