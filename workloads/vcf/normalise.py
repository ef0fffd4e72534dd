"""Split multi-allelic records exactly as `bcftools norm -m -any` does, with bcftools itself.

bcftools comes from pysam's wheel (bcftools 1.24 bundled with htslib), the same in the
container and on a laptop. Without a reference FASTA, bcftools does not left-align;
splitting (INFO/FORMAT Number=A/R/G slicing, GT recoding, phase kept) is all it does.

`split_stream` runs the same command in a child process writing uncompressed BCF into a
pipe, so the split records are converted while bcftools is still parsing (as in
`bcftools norm | bcftools query`) and no split file is ever written.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pysam
import pysam.bcftools

import workloads
from workloads.vcf.validate import VcfInputError

# The child: die with the parent, run pysam's bcftools, report its error on stderr.
_CHILD = """
import sys
from workloads.children import die_with_parent
die_with_parent(int(sys.argv[1]))
import pysam.bcftools, pysam.utils
try:
    pysam.bcftools.norm(*sys.argv[2:], catch_stdout=False)
except pysam.utils.SamtoolsError as exc:
    sys.stderr.write(str(exc)[-2000:])
    sys.exit(3)
"""


def _norm_args(src: Path, dst: str, output_type: str, threads: int) -> list[str]:
    args = ["-m", "-any", f"-O{output_type}", "-o", dst]
    if threads:
        args += ["--threads", str(threads)]
    return [*args, str(src)]


def _failure(src: Path, message: str) -> VcfInputError:
    # Input bcftools refuses is bad input like any other: the caller quarantines it.
    return VcfInputError(
        str(src), 0, f"bcftools norm -m -any failed: {message.strip()[-300:]}",
        f"check the file with `bcftools view {src.name}`",
    )


def normalise(src: Path, dst: Path, *, output_type: str = "u", threads: int = 0) -> Path:
    """Write the split file to dst (output_type: u = uncompressed BCF, v = VCF, z = bgzip)."""
    try:
        pysam.bcftools.norm(*_norm_args(src, str(dst), output_type, threads),
                            catch_stdout=False)
    except pysam.utils.SamtoolsError as exc:
        raise _failure(src, str(exc)) from exc
    return dst


class SplitStream:
    """The split records of `src` as uncompressed BCF on a pipe, from a bcftools child."""

    def __init__(self, src: Path, *, threads: int = 0) -> None:
        self.src = src
        root = str(Path(workloads.__file__).resolve().parents[1])  # this very package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        # stderr goes to an unnamed temporary file: a pipe could fill up and block the child.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(os.getpid()),
             *_norm_args(src, "-", "u", threads)],
            stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        assert self._child.stdout is not None
        # The reader (htslib) closes the descriptor it is given: it gets its own copy.
        self._fd = os.dup(self._child.stdout.fileno())
        self._child.stdout.close()

    def take_fd(self) -> int:
        """The pipe's read end, once: the reader owns (and closes) it from then on."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            raise RuntimeError("the split stream's descriptor was already taken")
        return fd

    def check(self, timeout: float | None = None) -> None:
        """Wait for bcftools; raise VcfInputError if it refused the input (if it still runs
        after `timeout` seconds, return: it was not the one that failed)."""
        try:
            status = self._child.wait(timeout)
        except subprocess.TimeoutExpired:
            return
        if status != 0:
            self._stderr.seek(0)
            message = self._stderr.read().decode("utf-8", "replace")
            raise _failure(self.src, message or f"exit status {self._child.returncode}")

    def close(self) -> None:
        """Stop bcftools if it still runs (the reader gave up early) and release the pipe."""
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()
        if self._fd >= 0:  # no reader took it
            os.close(self._fd)
            self._fd = -1
        self._stderr.close()


@contextlib.contextmanager
def split_stream(src: Path, *, threads: int = 0) -> Iterator[SplitStream]:
    stream = SplitStream(src, threads=threads)
    try:
        yield stream
    finally:
        stream.close()
