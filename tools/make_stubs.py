"""Write src/fastact/__init__.pyi and src/fastact/torch.pyi, the type stubs of fastact's
public functions and of fastact.torch, from the registry (run after adding or changing a
declaration: python tools/make_stubs.py; the torch stub needs PyTorch installed).

Each file is replaced in one step (written beside it, then renamed over it), so an error
or a signal leaves the old stub or the new one, never a part.
"""

import os
import signal
import sys
import tempfile
from pathlib import Path

from fastact._stubs import init_stub, torch_stub


def write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".pyi.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"wrote {target} ({text.count(chr(10))} lines)")


def main() -> None:
    # SIGTERM as an exception, so that write() removes its temporary file (Ctrl-C already is one)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    package = Path(__file__).resolve().parent.parent / "src" / "fastact"
    write(package / "__init__.pyi", init_stub())
    try:
        import torch  # noqa: F401
    except ImportError:
        print(f"PyTorch is not installed: {package / 'torch.pyi'} left as it was")
        return
    write(package / "torch.pyi", torch_stub())

if __name__ == "__main__":
    main()
