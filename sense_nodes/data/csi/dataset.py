"""Dataset folders of ray-traced CSI: writing, loading, validating.

A dataset is a folder holding two files:

- ``arrays.h5``: HDF5 arrays (layout per kind documented in
  :mod:`~sense_nodes.data.csi.srs_positioning` (``diffloc``),
  :mod:`~sense_nodes.data.csi.fwa_pairs` (``fwa``) and
  :mod:`~sense_nodes.data.csi.imaging_channels` (``imaging``));
- ``manifest.json``: everything needed to regenerate the arrays bit for bit
  and to interpret them: ``format``, ``format_version``, ``kind``, ``scene``,
  ``geometry`` (device positions), ``antenna_arrays``, ``carrier_hz``,
  ``subcarrier_spacing_hz``, ``num_subcarriers``, ``seed``, ``code_version``,
  ``solver`` (path-solver settings), ``split``, ``links`` (the link table:
  index, tx_id, rx_id), ``arrays`` (name -> shape, dtype), ``scaling`` (the
  knob that sizes the dataset), ``generation`` (seconds, samples, samples/s)
  and ``complete: true`` (written last).

A folder is written under a temporary name and renamed when complete, so an
interrupted run never leaves a folder that loads.

Consumers call :func:`load_dataset` and then :meth:`Dataset.sample` /
:func:`iter_link_csi`, which give per-link CFRs ``H[rx_ant, tx_ant, k]``
(complex64, centred subcarriers) with carrier, subcarrier spacing and SNR,
plus the ground truth of the sample: the contract of ``CsiFrame`` /
``CsiBundle``. :func:`frame_fields` turns one link into the fields of a
``CsiFrame`` (flattened row-major, subcarrier fastest) and
``sample.truth["objects"]`` holds ``GroundTruth`` fields, so a ROS node only
adds headers. ``Dataset.arrays`` reads small arrays whole and large ones
(over 64 MB) a slice at a time.

    ds = load_dataset(path)                       # DatasetError if bad
    for sample in iter_link_csi(ds, split="test"):
        for link in sample.links:                 # LinkCsi
            fields = frame_fields(link)           # CsiFrame fields
        truth = sample.truth["objects"]           # GroundTruth fields
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

FORMAT = "sense_nodes.csi_dataset"
FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.h5"
MANIFEST_FILE = "manifest.json"
KINDS = ("diffloc", "fwa", "imaging")
SPLIT_NAMES = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset folder or file that is missing, incomplete or inconsistent."""


@dataclass
class LinkCsi:
    """CSI of one link at one instant (one ``CsiFrame``)."""
    tx_id: str
    rx_id: str
    link_index: int
    H: np.ndarray  # [rx_ant, tx_ant, subcarrier] complex64
    carrier_hz: float
    scs_hz: float
    snr_db: float


@dataclass
class CsiSample:
    """All links of one sample (one ``CsiBundle``) and its ground truth.

    ``truth`` holds kind-specific arrays (see the generator's
    ``sample_links``) and ``truth["objects"]``: a list of dicts with the
    fields of a ``GroundTruth`` message (``id``, ``object_class`` 0 unknown /
    1 UAV, ``position`` (3,), ``velocity`` (3,), ``visible``)."""
    index: int
    links: list[LinkCsi]
    truth: dict = field(default_factory=dict)


def frame_fields(link: LinkCsi, values: bool = True) -> dict:
    """The fields of a ``CsiFrame`` message (all but the header) for one
    link: ``H[rx, tx, k]`` flattened row-major (subcarrier fastest);
    without ``real`` and ``imag`` unless ``values`` (for a caller that
    copies them from ``link.H`` straight into the message)."""
    n_rx, n_tx, n_k = np.shape(link.H)
    fields = {"tx_id": link.tx_id, "rx_id": link.rx_id, "link_index": int(link.link_index),
              "num_rx_antennas": n_rx, "num_tx_antennas": n_tx, "num_subcarriers": n_k,
              "carrier_frequency": float(link.carrier_hz), "subcarrier_spacing": float(link.scs_hz),
              "snr_db": float(link.snr_db)}
    if values:
        H = np.asarray(link.H, dtype=np.complex64)
        fields["real"], fields["imag"] = np.ascontiguousarray(H.real).ravel(), np.ascontiguousarray(H.imag).ravel()
    return fields


def truth_object(obj_id: int, object_class: int, position, velocity=(0.0, 0.0, 0.0),
                 visible: bool = True) -> dict:
    return {"id": int(obj_id), "object_class": int(object_class),
            "position": np.asarray(position, dtype=np.float64).reshape(3),
            "velocity": np.asarray(velocity, dtype=np.float64).reshape(3), "visible": bool(visible)}


def code_version() -> str:
    """Package version plus a hash of this package's sources: two datasets
    with the same code_version were made by the same generator code."""
    import sense_nodes
    from sense_nodes.data.paths import source_hash
    files = sorted(Path(__file__).parent.glob("*.py"))
    return f"{sense_nodes.__version__}+src.{source_hash(files, [f.name for f in files])}"


def default_dir(kind: str, tiny: bool, seed: int) -> Path:
    from sense_nodes.data.paths import cache_dir
    return cache_dir("datasets") / f"{kind}{'-tiny' if tiny else ''}-seed{seed}"


def write_dataset(out_dir: str | os.PathLike, manifest: dict, arrays: dict) -> Path:
    """Write arrays and manifest into ``out_dir`` atomically (temporary
    folder, then rename). ``manifest['arrays']`` is filled in here."""
    import h5py
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    desc = {}
    with h5py.File(tmp / ARRAYS_FILE, "w") as h5:
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            h5.create_dataset(name, data=arr)
            desc[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype)}
    manifest = dict(manifest)
    manifest.update({"format": FORMAT, "format_version": FORMAT_VERSION,
                     "arrays": desc, "arrays_file": ARRAYS_FILE,
                     "arrays_bytes": (tmp / ARRAYS_FILE).stat().st_size,
                     "complete": True})
    with open(tmp / MANIFEST_FILE, "w") as fh:
        json.dump(_jsonable(manifest), fh, indent=2)
        fh.write("\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_manifest(path: str | os.PathLike) -> dict:
    p = Path(path)
    mf = p / MANIFEST_FILE if p.is_dir() else p
    if not mf.exists():
        raise DatasetError(f"{p}: not a CSI dataset (no {MANIFEST_FILE}); "
                           f"generate one with `sense data generate`")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{mf}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{mf}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{mf}: format_version {manifest.get('format_version')!r}, "
                           f"this code reads {FORMAT_VERSION}")
    if manifest.get("kind") not in KINDS:
        raise DatasetError(f"{mf}: unknown kind {manifest.get('kind')!r} (known: {', '.join(KINDS)})")
    if manifest.get("complete") is not True:
        raise DatasetError(f"{mf}: incomplete dataset (generation did not finish)")
    return manifest


class Dataset:
    """A loaded dataset: ``manifest`` (dict), ``arrays`` (name -> numpy
    array, read on first access), ``kind``, ``path``."""

    def __init__(self, path: Path, manifest: dict, arrays: dict):
        self.path = path
        self.manifest = manifest
        self.kind = manifest["kind"]
        self.arrays = arrays

    def __repr__(self):
        return f"Dataset({self.kind}, {self.num_samples} samples, {self.path})"

    @property
    def num_samples(self) -> int:
        return int(self.manifest["num_samples"])

    @property
    def carrier_hz(self) -> float:
        return float(self.manifest["carrier_hz"])

    @property
    def scs_hz(self) -> float:
        return float(self.manifest["subcarrier_spacing_hz"])

    @property
    def links(self) -> list[dict]:
        """The link table: dicts with ``index``, ``tx_id``, ``rx_id``."""
        return self.manifest["links"]

    def split_indices(self, split: str, scheme: str | None = None) -> np.ndarray:
        """Sample indices of ``split`` (train / val / test) under a split
        ``scheme`` (default: the manifest's first)."""
        schemes = self.manifest["split"]["schemes"]
        scheme = scheme or next(iter(schemes))
        if scheme not in schemes:
            raise DatasetError(f"{self.path}: no split scheme {scheme!r} (have {', '.join(schemes)})")
        if split not in SPLIT_NAMES:
            raise DatasetError(f"unknown split {split!r} (use {', '.join(SPLIT_NAMES)})")
        arr = self.arrays[schemes[scheme]["array"]]
        return np.flatnonzero(arr == SPLIT_NAMES.index(split))

    def sample(self, index: int, **options) -> CsiSample:
        """Per-link CFRs and ground truth of one sample; ``options`` are
        kind-specific (see the generator module's ``sample_links``)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample {index} out of range 0..{self.num_samples - 1}")
        return _kind_module(self.kind).sample_links(self, int(index), **options)


def _kind_module(kind: str):
    import importlib
    return importlib.import_module({
        "diffloc": "sense_nodes.data.csi.srs_positioning",
        "fwa": "sense_nodes.data.csi.fwa_pairs",
        "imaging": "sense_nodes.data.csi.imaging_channels",
    }[kind])


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Load and validate a dataset folder; raises :class:`DatasetError`
    naming the file and the problem when it is missing, truncated or does
    not match its manifest."""
    import h5py
    p = Path(path)
    if p.is_file() and p.name in (ARRAYS_FILE, MANIFEST_FILE):
        p = p.parent
    if not p.exists():
        raise DatasetError(f"{p}: no such dataset folder")
    manifest = read_manifest(p)
    h5path = p / manifest.get("arrays_file", ARRAYS_FILE)
    if not h5path.exists():
        raise DatasetError(f"{h5path}: arrays file missing")
    try:
        with h5py.File(h5path, "r") as h5:
            for name, desc in manifest["arrays"].items():
                if name not in h5:
                    raise DatasetError(f"{h5path}: array {name!r} missing (incomplete dataset)")
                ds = h5[name]
                if list(ds.shape) != list(desc["shape"]) or str(ds.dtype) != desc["dtype"]:
                    raise DatasetError(
                        f"{h5path}: array {name!r} is {list(ds.shape)} {ds.dtype}, "
                        f"manifest says {desc['shape']} {desc['dtype']}")
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{h5path}: unreadable or truncated HDF5 file ({exc})") from exc
    n = manifest.get("num_samples")
    if not isinstance(n, int) or n < 0:
        raise DatasetError(f"{p / MANIFEST_FILE}: bad num_samples {n!r}")
    return Dataset(p, manifest, _LazyArrays(h5path, manifest["arrays"]))


# Arrays larger than this are read slice by slice (a sample at a time)
# instead of whole, so a node replaying a 1 GB dataset stays small.
LAZY_BYTES = 64 << 20


class H5Array:
    """A read-only view of one large HDF5 array: ``a[i]`` reads only what it
    indexes; ``numpy.asarray(a)`` reads it all."""

    def __init__(self, h5path: Path, name: str, shape, dtype):
        self._h5path, self._name = h5path, name
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        import h5py
        if isinstance(key, (int, np.integer)):
            key = int(key)
            if not -self.shape[0] <= key < self.shape[0]:
                raise IndexError(key)
        try:
            with h5py.File(self._h5path, "r") as h5:
                return h5[self._name][key]
        except OSError as exc:
            raise DatasetError(f"{self._h5path}: cannot read array {self._name!r} ({exc})") from exc

    def __array__(self, dtype=None, copy=None):
        arr = self[()]
        return arr if dtype is None else arr.astype(dtype)


class _LazyArrays(dict):
    """name -> numpy array, each read from the HDF5 file on first access
    (large ones as :class:`H5Array` views)."""

    def __init__(self, h5path: Path, arrays: dict):
        super().__init__()
        self._h5path = h5path
        self._desc = arrays

    def __missing__(self, name):
        import h5py
        if name not in self._desc:
            raise KeyError(name)
        desc = self._desc[name]
        nbytes = int(np.prod(desc["shape"])) * np.dtype(desc["dtype"]).itemsize
        if nbytes > LAZY_BYTES:
            arr = H5Array(self._h5path, name, desc["shape"], desc["dtype"])
        else:
            try:
                with h5py.File(self._h5path, "r") as h5:
                    arr = h5[name][()]
            except OSError as exc:
                raise DatasetError(f"{self._h5path}: cannot read array {name!r} ({exc})") from exc
        self[name] = arr
        return arr

    def __contains__(self, name):
        return name in self._desc

    def keys(self):
        return list(self._desc)


def iter_link_csi(dataset: Dataset | str | os.PathLike, indices=None, split: str | None = None,
                  scheme: str | None = None, **options) -> Iterator[CsiSample]:
    """Yield :class:`CsiSample` (per-link ``LinkCsi`` with ``H[rx_ant,
    tx_ant, k]`` complex64, carrier, spacing, SNR; plus ``truth``) for the
    given sample ``indices``, or the samples of ``split``, or all."""
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if indices is None:
        indices = ds.split_indices(split, scheme) if split else range(ds.num_samples)
    for i in indices:
        yield ds.sample(int(i), **options)


def random_split(n: int, rng: np.random.Generator, ratios=(3, 1, 1)) -> np.ndarray:
    """0/1/2 (train/val/test) per item, shuffled, in the given ratios."""
    ratios = np.asarray(ratios, dtype=float)
    counts = np.floor(n * ratios / ratios.sum()).astype(int)
    counts[0] += n - counts.sum()
    labels = np.repeat(np.arange(3), counts).astype(np.int8)
    rng.shuffle(labels)
    return labels


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.t0
