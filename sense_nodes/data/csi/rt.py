"""Sionna RT setup shared by the CSI dataset generators.

Sionna RT 2.2 runs on Mitsuba 3 / Dr.Jit. On the CPU, Dr.Jit JIT-compiles
with LLVM and needs LLVM 19 (Debian package ``libllvm19``; older LLVMs abort),
found through ``DRJIT_LIBLLVM_PATH``. Everything here must happen *before*
``mitsuba``, ``drjit`` or ``sionna.rt`` are first imported:

- :func:`setup` points ``DRJIT_LIBLLVM_PATH`` at ``libLLVM-19.so`` when it is
  unset, and forces the Mitsuba variant (``llvm_ad_mono_polarized`` on the CPU,
  ``cuda_ad_mono_polarized`` only when CUDA is asked for), since importing
  ``sionna.rt`` otherwise picks whatever variant it finds.
- :func:`load_scene` loads one of the scenes shipped with Sionna RT and
  optionally gives every material a diffuse ``scattering_coefficient``
  (diffuse reflection carries no energy when it is 0, the default).
- :func:`solve_paths` runs ``PathSolver(deterministic=True)`` with a fixed seed
  and bounded budgets: path sets change with ``samples_per_src`` and the seed,
  and the default 1e6 budgets can exceed Dr.Jit's limits.
"""
from __future__ import annotations

import glob
import os
from typing import Any

CPU_VARIANT = "llvm_ad_mono_polarized"
CUDA_VARIANT = "cuda_ad_mono_polarized"

# Where Debian / Ubuntu and a few other distributions put LLVM 19.
_LLVM_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libLLVM-19.so",
    "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1",
    "/usr/lib/aarch64-linux-gnu/libLLVM-19.so",
    "/usr/lib/llvm-19/lib/libLLVM-19.so",
    "/usr/lib/llvm-19/lib/libLLVM.so.1",
    "/usr/lib64/libLLVM-19.so",
    "/usr/local/lib/libLLVM-19.so",
)

_STATE: dict[str, Any] = {"variant": None}

# Deterministic solver settings used by every generator unless overridden.
# They are written into each manifest so a dataset can be regenerated.
DEFAULT_SOLVER = {
    "max_depth": 3,
    "samples_per_src": 100_000,
    "max_num_paths_per_src": 20_000,
    "los": True,
    "specular_reflection": True,
    "diffuse_reflection": False,
    "refraction": False,
    "diffraction": False,
    "edge_diffraction": False,
    "synthetic_array": True,
    "seed": 1,
}


class RTUnavailable(RuntimeError):
    """Sionna RT (or the LLVM it needs) cannot be used on this machine."""


def find_libllvm() -> str | None:
    """Path of an LLVM 19 shared library, or None."""
    env = os.environ.get("DRJIT_LIBLLVM_PATH")
    if env and os.path.exists(env):
        return env
    for cand in _LLVM_CANDIDATES:
        if os.path.exists(cand):
            return cand
    for pattern in ("/usr/lib/*/libLLVM-19*.so*", "/usr/lib/llvm-19/lib/libLLVM*.so*"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def setup(cuda: bool = False):
    """Configure Dr.Jit / Mitsuba and return the ``sionna.rt`` module.

    Idempotent; a second call with another device raises, since Mitsuba's
    variant cannot change once arrays exist.
    """
    variant = CUDA_VARIANT if cuda else CPU_VARIANT
    if _STATE["variant"] is not None:
        if _STATE["variant"] != variant:
            raise RTUnavailable(f"Mitsuba variant already set to {_STATE['variant']}, "
                                f"cannot switch to {variant} in the same process")
        import sionna.rt as srt
        return srt
    if not cuda and "DRJIT_LIBLLVM_PATH" not in os.environ:
        # If drjit is already imported (by other code in this process) this may
        # come too late; Dr.Jit loads LLVM on first use, so set it anyway.
        path = find_libllvm()
        if path is None:
            raise RTUnavailable("libLLVM-19.so not found: install the Debian package "
                                "libllvm19 or set DRJIT_LIBLLVM_PATH")
        os.environ["DRJIT_LIBLLVM_PATH"] = path
    try:
        import mitsuba as mi
        mi.set_variant(variant)
        import sionna.rt as srt
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise RTUnavailable(f"cannot initialise Sionna RT ({variant}): {exc}") from exc
    _STATE["variant"] = variant
    return srt


def variant() -> str | None:
    return _STATE["variant"]


def versions() -> dict:
    """Versions of the ray-tracing stack, for manifests."""
    out = {}
    for name in ("sionna.rt", "mitsuba", "drjit"):
        try:
            mod = __import__(name, fromlist=["__version__"])
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except Exception:  # pragma: no cover
            out[name] = "missing"
    try:
        from importlib.metadata import version
        out["sionna-rt"] = version("sionna-rt")
    except Exception:  # pragma: no cover
        pass
    return out


def load_scene(name: str, scattering_coefficient: float | None = None,
               frequency_hz: float | None = None, cuda: bool = False):
    """Load a scene shipped with Sionna RT by name (``munich``, ``etoile``,
    ``simple_street_canyon``, ...). With ``scattering_coefficient`` > 0 every
    radio material scatters diffusely (Lambertian pattern) with that
    coefficient."""
    srt = setup(cuda)
    path = getattr(srt.scene, name, None)
    if path is None or not isinstance(path, str):
        raise ValueError(f"unknown Sionna RT scene {name!r}")
    scene = srt.load_scene(path, merge_shapes=True)
    if frequency_hz is not None:
        scene.frequency = float(frequency_hz)
    if scattering_coefficient is not None:
        for mat in scene.radio_materials.values():
            mat.scattering_coefficient = float(scattering_coefficient)
    return scene


def solve_paths(scene, **settings):
    """``PathSolver(deterministic=True)`` with :data:`DEFAULT_SOLVER` updated
    by ``settings``."""
    srt = setup(variant() == CUDA_VARIANT)
    cfg = dict(DEFAULT_SOLVER)
    cfg.update(settings)
    solver = srt.PathSolver(deterministic=True) if "deterministic" not in cfg else \
        srt.PathSolver(deterministic=cfg.pop("deterministic"))
    return solver(scene, **cfg)


def scene_bounds(scene):
    """(min_xyz, max_xyz) of the scene's bounding box as numpy arrays."""
    import numpy as np
    bbox = scene.mi_scene.bbox()
    return np.array(bbox.min, dtype=float).ravel(), np.array(bbox.max, dtype=float).ravel()


def surface_height(scene, xy, z_top: float = 1000.0):
    """Height of the first surface hit by a ray cast straight down at each
    (x, y) (array [N, 2]); NaN where nothing is hit. Vectorised with
    Mitsuba's ray caster."""
    import numpy as np
    import mitsuba as mi
    xy = np.asarray(xy, dtype=np.float32).reshape(-1, 2)
    n = len(xy)
    o = mi.Point3f(xy[:, 0], xy[:, 1], np.full(n, z_top, np.float32))
    d = mi.Vector3f(np.zeros(n, np.float32), np.zeros(n, np.float32), -np.ones(n, np.float32))
    si = scene.mi_scene.ray_intersect(mi.Ray3f(o, d))
    t = np.array(si.t, dtype=np.float64)
    valid = np.array(si.is_valid(), dtype=bool)
    z = z_top - t
    z[~valid] = np.nan
    return z


def line_of_sight(scene, a, b):
    """True where the straight segment a[i] -> b[i] hits no scene geometry
    (arrays [N, 3]). Used to gate analytic echoes by visibility."""
    import numpy as np
    import mitsuba as mi
    a = np.asarray(a, dtype=np.float32).reshape(-1, 3)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 3)
    v = b - a
    dist = np.linalg.norm(v, axis=1)
    d = v / np.maximum(dist, 1e-9)[:, None]
    ray = mi.Ray3f(mi.Point3f(a[:, 0], a[:, 1], a[:, 2]),
                   mi.Vector3f(d[:, 0], d[:, 1], d[:, 2]))
    ray.maxt = mi.Float((dist * (1 - 1e-4)).astype(np.float32))
    hit = np.array(scene.mi_scene.ray_test(ray), dtype=bool)
    return ~hit


def point(xyz):
    """A Mitsuba Point3f from any 3-sequence (numpy scalars included)."""
    import mitsuba as mi
    return mi.Point3f(*[float(v) for v in xyz])


def antenna_positions(device, array, wavelength: float):
    """Absolute positions [N_ant, 3] of a device's (rotated) array elements,
    dual-polarised pairs counted once."""
    import numpy as np
    rel = np.array(array.rotate(wavelength, device.orientation), dtype=np.float64)
    pos = np.array(device.position, dtype=np.float64).reshape(3)
    return pos[None, :] + rel.reshape(3, -1).T
