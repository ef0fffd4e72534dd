"""Split multi-allelic records exactly as `bcftools norm -m -any` does, with bcftools itself.

bcftools comes from pysam's wheel (bcftools 1.24 bundled with htslib), the same in the
container and on a laptop. Without a reference FASTA, bcftools does not left-align;
splitting (INFO/FORMAT Number=A/R/G slicing, GT recoding, phase kept) is all it does.
"""

from __future__ import annotations

from pathlib import Path

import pysam
import pysam.bcftools

from workloads.vcf.validate import VcfInputError


def normalise(src: Path, dst: Path, *, output_type: str = "u", threads: int = 0) -> Path:
    """Write the split file to dst (output_type: u = uncompressed BCF, v = VCF, z = bgzip)."""
    args = ["-m", "-any", f"-O{output_type}", "-o", str(dst)]
    if threads:
        args += ["--threads", str(threads)]
    try:
        pysam.bcftools.norm(*args, str(src), catch_stdout=False)
    except pysam.utils.SamtoolsError as exc:
        # Input bcftools refuses is bad input like any other: the caller quarantines it.
        raise VcfInputError(
            str(src), 0, f"bcftools norm -m -any failed: {str(exc).strip()[-300:]}",
            f"check the file with `bcftools view {src.name}`",
        ) from exc
    return dst

