"""``python -m fastact apply NAME IN.npy [OUT.npy]``: an activation over a .npy file larger
than memory, memory-mapped and in chunks.

The call is checked on a one-element slice before any output exists (a bad parameter,
an unsupported dtype, a mismatched gradient file or an OUT that cannot be written stops
it there). A new OUT is written to a temporary file beside it, allocated on the disk in
full before any work (a full disk is an error then, not a bus error half-way), and
renamed into place only when every chunk is done; on any error, Ctrl-C, SIGTERM or
SIGHUP the temporary file is removed, so no half-written OUT is ever left. OUT gets the
permissions the umask gives a new file. ``--in-place`` writes over IN (or, with
``--backward``, over GRAD, as ``out=grad_output`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import _fortran
from ._kinds import kind_of

CHUNK_BYTES = 1 << 26  # 64 MiB of input per chunk: large enough for the parallel kernels


class ApplyError(Exception):
    """A problem with the command line or the files, reported without a traceback."""


class Terminated(BaseException):  # as KeyboardInterrupt: a stop, not an error
    """SIGTERM or SIGHUP arrived: raised where the work is, so that its clean-up runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# The signals that arrived while the work ran. The handler's exception can be lost: raised
# while Python code runs inside a C callback (numba compiling a kernel through llvmlite,
# on the first chunk with a cold cache), it is printed as "ignored" and the work goes on.
# Each chunk, and the rename that commits the output, check this list first.
_ARRIVED: list[int] = []


def _stop(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _check_stop() -> None:
    if _ARRIVED:
        _stop(_ARRIVED[0])


@contextlib.contextmanager
def _terminable():
    """SIGTERM (kill, timeout, SLURM) and SIGHUP (a closed terminal) raise Terminated
    while the work runs, SIGINT KeyboardInterrupt; a stop whose exception was lost is
    raised at the next chunk (_check_stop). Only the main thread can set handlers:
    elsewhere the signals keep their disposition."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        _ARRIVED.append(signum)
        _stop(signum)

    hook = sys.unraisablehook

    def quiet(unraisable: Any) -> None:
        # a stop lost in a callback is not an error to print: it is raised at the next chunk
        if not isinstance(unraisable.exc_value, Terminated | KeyboardInterrupt):
            hook(unraisable)

    _ARRIVED.clear()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    sys.unraisablehook = quiet
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _ARRIVED.clear()


def _open(path: Path, what: str, mode: str = "r") -> np.memmap:
    try:
        with open(path, "rb") as fh:
            np.lib.format.read_magic(fh)
    except FileNotFoundError:
        raise ApplyError(f"{what} {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise ApplyError(f"{what} {path}: not a .npy file ({e})") from None
    try:
        a = np.lib.format.open_memmap(path, mode=mode)
    except (OSError, ValueError) as e:
        raise ApplyError(f"{what} {path}: cannot be memory-mapped ({e})") from None
    if a.dtype.hasobject:
        raise ApplyError(f"{what} {path}: holds Python objects, which fastact does not support")
    return a


def _params(act: Any, items: list[str]) -> dict[str, Any]:
    """--param NAME=VALUE, as the activation's parameters (a choice by name, others as floats)."""
    declared = {p.name: p for p in act.params}
    declared_names = kind_of(act).apply_params(act)
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in declared_names:
            if not declared_names:
                raise ApplyError(f"--param {item!r}: {act.name} takes no parameters")
            raise ApplyError(f"--param {item!r}: expected NAME=VALUE, NAME one of {act.name}'s parameters "
                             f"({', '.join(declared_names)})")
        p = declared.get(name)
        try:
            if name == "axis":  # one axis, or several: --param axis=1,2
                out[name] = tuple(int(v) for v in value.split(",")) if "," in value else int(value)
            elif name == "keepdims":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ApplyError(f"--param {item!r}: keepdims is true or false")
                out[name] = value.lower() in ("true", "1")
            elif name == "weight":
                out[name] = np.array([float(v) for v in value.split(",")])
            else:
                out[name] = value if p.choices else float(value)
        except ValueError:
            raise ApplyError(f"--param {item!r}: {value!r} is not a number") from None
    required = kind_of(act).apply_required(act)
    missing = [n for n in required if n not in out]
    if missing:
        example = {"weight": "0.25 (one slope) or --param weight=0.1,0.2,... (one per channel)"}
        raise ApplyError(f"{act.name} needs " + " and ".join(
            f"--param {n}=" + example.get(n, "VALUE") for n in missing))
    return out


def _chunks(n: int, step: int, progress: bool, desc: str) -> Iterable[tuple[int, int]]:
    spans = [(s, min(s + step, n)) for s in range(0, n, step)]
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(spans, desc=desc, unit="chunk", file=sys.stderr)
    return spans


def _check_target(dst: Path, what: str) -> None:
    """Refuse, before any work, an OUT that the final rename could not put in place."""
    if dst.is_dir():
        raise ApplyError(f"{what} {dst}: is a directory; give a file name")
    if not dst.parent.is_dir():
        raise ApplyError(f"{what} {dst}: cannot be written (no directory {dst.parent})")


def _umask() -> int:
    mask = os.umask(0o22)  # reading the umask sets it: put it straight back
    os.umask(mask)
    return mask


def _temporary(dst: Path, what: str) -> Path:
    """A new file beside dst, renamed onto it when the work is done, with the mode that
    the umask gives a new file (mkstemp's is 0600: colleagues could not read the result)."""
    _check_target(dst, what)
    try:
        fd, name_tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".partial")
    except OSError as e:
        raise ApplyError(f"{what} {dst}: cannot be written ({e.strerror or e})") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    finally:
        os.close(fd)
    return Path(name_tmp)


_ZEROS = bytes(1 << 22)


def _preallocate(path: Path, dst: Path) -> None:
    """Reserve every block of the file on the disk now. A memory map writes into a sparse
    file's holes lazily, and a full disk then kills the process with SIGBUS mid-run."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except AttributeError:  # no posix_fallocate (macOS): the zeros below
            pass
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):  # a file system without it
                raise
        for offset in range(0, size, len(_ZEROS)):  # writing every block allocates it
            os.pwrite(fd, _ZEROS[: min(len(_ZEROS), size - offset)], offset)
        os.fsync(fd)
    except OSError as e:
        why = "not enough space on the device" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        raise ApplyError(f"OUT {dst}: cannot be written: {size:,} bytes needed ({why})") from None
    finally:
        os.close(fd)


def apply(name: str, src: Path, dst: Path | None, params: list[str], backward: Path | None,
          in_place: bool, chunk_bytes: int = CHUNK_BYTES, progress: bool = True,
          weight_grad: Path | None = None) -> Path:
    import fastact as fa

    if name not in fa.ACTIVATIONS:
        raise ApplyError(f"unknown activation {name!r}; known: {', '.join(fa.ACTIVATIONS)}")
    act = fa.ACTIVATIONS[name]
    if in_place == (dst is not None):
        raise ApplyError("give OUT.npy, or --in-place (to write over IN, or over GRAD with --backward)")
    kw = _params(act, params)
    x = _open(src, "IN", "r+" if in_place and backward is None else "r")
    g = _open(backward, "GRAD", "r+" if in_place else "r") if backward is not None else None
    if dst is not None and dst.exists() and any(
            p is not None and os.path.samefile(dst, p) for p in (src, backward)):
        raise ApplyError(f"OUT {dst} is an input file: use --in-place to write over it")
    for target, what in ((dst, "OUT"), (weight_grad, "--weight-grad")):
        if target is not None:
            _check_target(target, what)

    kind = kind_of(act)
    if weight_grad is not None and not (kind.has_weight_grad and g is not None):
        raise ApplyError("--weight-grad is for prelu with --backward only")
    if kind.has_weight_grad and g is not None and weight_grad is None:
        raise ApplyError(f"{name} --backward also computes the weight's gradient: give --weight-grad FILE.npy")
    public = getattr(fa, f"{name}_backward" if g is not None else name)
    weight_total: list[np.ndarray] = []  # prelu's weight gradient, summed over the chunks in float64

    def fn(*args: Any, **kwargs: Any) -> Any:
        result = public(*args, **kwargs)
        if weight_grad is None:
            return result
        grad_x, grad_w = result
        if "out" in kwargs:
            weight_total.append(grad_w.astype(np.float64))
        return grad_x

    fn.__name__ = public.__name__
    try:
        # the views whose leading axis is cut, so that every chunk is a complete call
        # (whole rows, whole leading slices), or what a reduction over axis 0 streams
        layout = kind.apply_layout(fn, x, kw, g is not None)
    except (TypeError, ValueError) as e:
        raise ApplyError(str(e)) from None
    if g is not None and g.shape != layout.grad_shape:
        if layout.grad_shape == x.shape:
            raise ApplyError(f"GRAD {backward} has shape {g.shape}, IN {src} has shape {x.shape}")
        raise ApplyError(f"GRAD {backward} has shape {g.shape}; {name}'s result for IN {src} (shape {x.shape}) "
                         f"has shape {layout.grad_shape}")
    if g is not None and g.ndim > 1 and g.flags.c_contiguous != x.flags.c_contiguous:
        raise ApplyError("IN and GRAD must have the same memory order (both C or both Fortran)")
    if in_place and layout.out_shape != (x if g is None else g).shape:
        raise ApplyError(f"--in-place: {public.__name__}'s result has shape {layout.out_shape}, the file "
                         f"{(x if g is None else g).shape}: give OUT.npy")
    n = layout.bind(x, g)
    # check everything on one element (one row, one leading slice) before writing anything
    try:
        probe = np.asarray(layout.probe())
    except (TypeError, ValueError) as e:
        raise ApplyError(str(e)) from None
    if in_place and probe.dtype != (x if g is None else g).dtype:
        raise ApplyError(f"--in-place: the result is {probe.dtype}, the file holds {(x if g is None else g).dtype}")
    temporaries: list[Path] = []  # removed on any way out but success, whatever the point reached
    out_arr: np.ndarray | None = None
    try:
        weight_tmp = None if weight_grad is None else _temporary(weight_grad, "--weight-grad")
        if weight_tmp is not None:
            temporaries.append(weight_tmp)
        tmp = None
        if in_place:
            out_arr = x if g is None else g
        else:
            tmp = _temporary(dst, "OUT")
            temporaries.append(tmp)
            try:
                out_arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=probe.dtype, shape=layout.out_shape,
                                                    fortran_order=_fortran(x) and len(layout.out_shape) > 1)
            except OSError as e:
                raise ApplyError(f"OUT {dst}: cannot be written ({e.strerror or e})") from None
            _preallocate(tmp, dst)
        layout.bind_out(out_arr)
        step = max(1, chunk_bytes // max(1, layout.row_bytes()))
        for p in range(layout.passes):
            for s, e in _chunks(n, step, progress, f"fastact apply {name}"):
                _check_stop()
                layout.chunk(p, s, e)
        layout.finish()
        layout.os = None
        out_arr.flush()
        out_arr = None  # unmapped before the rename
        if weight_tmp is not None:
            w = np.asarray(kw["weight"])
            total = np.sum(weight_total, axis=0) if weight_total else np.zeros(w.shape)
            with open(weight_tmp, "wb") as fh:  # a path not ending in .npy would get one appended
                np.save(fh, total.reshape(w.shape), allow_pickle=False)
        _check_stop()
        try:
            if weight_tmp is not None:
                os.replace(weight_tmp, weight_grad)
                temporaries.remove(weight_tmp)
            if tmp is not None:
                os.replace(tmp, dst)
                temporaries.remove(tmp)
        except OSError as e:  # something changed at the target while the work ran
            raise ApplyError(f"{e.filename2 or dst}: cannot be replaced ({e.strerror or e})") from None
    except BaseException:
        out_arr = None
        layout.os = None
        for t in temporaries:
            t.unlink(missing_ok=True)
        raise
    if tmp is None:
        return src if g is None else backward
    return dst


def main(args: argparse.Namespace) -> int:
    try:
        if args.chunk_mb <= 0:
            raise ApplyError(f"--chunk-mb must be a positive number of MiB, got {args.chunk_mb}")
        with _terminable():
            written = apply(args.name, Path(args.input), Path(args.output) if args.output else None, args.param,
                            Path(args.backward) if args.backward else None, args.in_place,
                            chunk_bytes=args.chunk_mb << 20, progress=not args.quiet,
                            weight_grad=Path(args.weight_grad) if args.weight_grad else None)
    except ApplyError as e:
        print(f"fastact apply: {e}", file=sys.stderr)
        return 2
    except Terminated as e:
        print(f"fastact apply: stopped by {e} (no output written)", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("fastact apply: stopped by SIGINT (no output written)", file=sys.stderr)
        return 128 + signal.SIGINT
    if not args.quiet:
        print(f"wrote {written}")
    return 0


def add_parser(sub: Any) -> None:
    a = sub.add_parser("apply", help="an activation over a .npy file, memory-mapped and in chunks")
    a.add_argument("name", metavar="NAME", help="the activation (relu, gelu, softmax, ...)")
    a.add_argument("input", metavar="IN.npy", help="the input x")
    a.add_argument("output", metavar="OUT.npy", nargs="?", help="where the result goes (not with --in-place)")
    a.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter, e.g. --param negative_slope=0.2 (repeat for more)")
    a.add_argument("--backward", metavar="GRAD.npy", help="compute NAME_backward(GRAD, IN) instead")
    a.add_argument("--in-place", action="store_true", help="write over IN (over GRAD with --backward)")
    a.add_argument("--weight-grad", metavar="FILE.npy",
                   help="prelu with --backward: where the weight's gradient goes (float64, summed over all chunks)")
    a.add_argument("--chunk-mb", type=int, default=CHUNK_BYTES >> 20, help="MiB of input per chunk (default 64)")
    a.add_argument("--quiet", action="store_true", help="no progress bar and no closing line")
    a.set_defaults(func=main)
