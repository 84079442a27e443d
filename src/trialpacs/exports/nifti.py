"""NIfTI volumes with JSON sidecars (dcm2niix), checked against the DICOM geometry.

dcm2niix (Debian package ``dcm2niix``) converts one series directory; its
output is deterministic (``pigz -n`` or its internal gzip, no timestamps).
Every volume is checked before it goes into a package: its shape, and the
world position of the centres of its eight corner voxels, must agree with
the geometry the DICOM headers describe (ImagePositionPatient,
ImageOrientationPatient, PixelSpacing, slice positions), whatever flips or
axis order the converter chose. A volume that disagrees is left out and the
manifest says why.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from trialpacs.errors import TrialpacsError

TOLERANCE_MM = 0.1


class NiftiError(TrialpacsError):
    """The converter failed or is not installed."""


def converter() -> str | None:
    return shutil.which("dcm2niix")


def convert_series(dicom_dir: Path, out_dir: Path, name: str, timeout: float = 300) -> list[Path]:
    """Run dcm2niix on one series directory; the files it wrote, sorted."""
    exe = converter()
    if exe is None:
        raise NiftiError("dcm2niix is not installed (Debian package dcm2niix)")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "-z", "y", "-b", "y", "-ba", "y", "-f", name, "-o", str(out_dir), str(dicom_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    written = sorted(p for p in out_dir.iterdir() if p.is_file())
    if proc.returncode != 0 or not any(p.name.endswith((".nii", ".nii.gz")) for p in written):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise NiftiError(f"dcm2niix found no volume in the series: {' | '.join(tail)}")
    return written


@dataclass(frozen=True)
class Geometry:
    """A voxel grid: its shape and, per slice, the RAS positions (mm) of the four in-plane
    corner voxel centres (the DICOM headers' slices, or a NIfTI volume's)."""

    shape: tuple[int, int, int]  # in-plane sizes (columns, rows for DICOM), slices
    slice_corners: np.ndarray  # (slices, 4, 3)

    @property
    def slice_spacing(self) -> float:
        if len(self.slice_corners) < 2:
            return 0.0
        centres = self.slice_corners.mean(axis=1)
        return float(np.median(np.linalg.norm(np.diff(centres, axis=0), axis=1)))


_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def dicom_geometry(datasets: Sequence[Dataset]) -> Geometry | None:
    """The slices of a stack of single-frame images; None when the headers cannot say."""
    usable = [
        ds for ds in datasets
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds and "PixelSpacing" in ds
    ]  # fmt: skip
    if not usable or len(usable) != len(datasets):
        return None
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for ds in usable):
        return None
    iop = np.array([float(v) for v in usable[0].ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = sorted(
        (np.array([float(v) for v in ds.ImagePositionPatient]) for ds in usable),
        key=lambda p: float(np.dot(normal, p)),
    )
    rows, cols = int(usable[0].Rows), int(usable[0].Columns)
    row_spacing, col_spacing = (float(v) for v in usable[0].PixelSpacing)
    across = row_dir * col_spacing * (cols - 1)  # along a row, over the columns
    down = col_dir * row_spacing * (rows - 1)  # down a column, over the rows
    corners = (
        np.array([[p, p + across, p + down, p + across + down] for p in positions]) * _LPS_TO_RAS
    )
    return Geometry((cols, rows, len(positions)), corners)


def nifti_geometry(path: Path) -> Geometry:
    import nibabel as nib

    img = nib.load(str(path))
    dims = tuple(int(v) for v in img.shape[:3])  # type: ignore[attr-defined]
    ni, nj, nk = (*dims, 1, 1, 1)[:3]
    affine = np.array(img.affine, dtype=np.float64)  # type: ignore[attr-defined]
    corners = []
    for k in range(nk):
        pts = np.array([[i, j, k, 1.0] for j in (0, nj - 1) for i in (0, ni - 1)]).T
        corners.append((affine @ pts).T[:, :3])
    return Geometry((ni, nj, nk), np.array(corners))


def geometry_problems(nifti: Geometry, dicom: Geometry, tol: float = TOLERANCE_MM) -> list[str]:
    """What differs between a volume and its series (empty: they agree).

    Each DICOM slice must match one volume slice, in order (either direction):
    its four corner voxels where the volume puts them, to ``tol`` in plane and
    to a quarter of the slice spacing across slices (scanners round positions
    to 0.1 mm, and a converter writes one spacing for the whole stack).
    """
    if sorted(nifti.shape[:2]) != sorted(dicom.shape[:2]) or nifti.shape[2] != dicom.shape[2]:
        return [f"shape {nifti.shape} differs from the series' {dicom.shape}"]
    problems: list[str] = []
    across = max(tol, 0.25 * dicom.slice_spacing)
    got_centres = nifti.slice_corners.mean(axis=1)
    matched: list[int] = []
    for k, want in enumerate(dicom.slice_corners):
        centre = want.mean(axis=0)
        best = int(np.argmin(np.linalg.norm(got_centres - centre, axis=1)))
        matched.append(best)
        shift = float(np.linalg.norm(got_centres[best] - centre))
        # in-plane: the corners around each centre, in any order (flips reorder them)
        got = nifti.slice_corners[best] - got_centres[best]
        d = np.linalg.norm(got[:, None, :] - (want - centre)[None, :, :], axis=2)
        in_plane = float(d.min(axis=0).max())
        if shift > across or in_plane > tol:
            problems.append(
                f"slice {k + 1}: {shift:.2f} mm off along the stack, corners {in_plane:.2f} mm "
                "off in plane"
            )
            break
    if not problems and matched not in (sorted(matched), sorted(matched, reverse=True)):
        problems.append("slice order of the volume differs from the series")
    if not problems and len(set(matched)) != len(matched):
        problems.append("several series slices fall on one volume slice")
    return problems
