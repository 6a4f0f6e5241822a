"""Objects for the table-top env: real YCB when ManiSkill has it, else a stand-in set in YCB's layout.

ManiSkill's YCB download is unreachable here, so ``build_standin_set`` writes objects into the same layout
ManiSkill reads (``assets/mani_skill2_ycb/info_pick_v0.json`` + ``models/<id>/{collision.ply,textured.obj}``)
from meshes that ship in packages (robosuite 1.5.2's kitchen objects, MIT; ManiSkill's own task objects,
Apache-2.0) plus procedural shapes. Every object is dropped onto a plane in a separate process before it is
accepted, because an odd mesh can crash PhysX (a flat disc did) and a crash must not take the caller down.

Set-up runs ``python -m pvm_mbrl.envs.tabletop_objects build``; the env finds the set by ``resolve_object_set``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np

YCB_SUBDIR = Path("assets") / "mani_skill2_ycb"
INFO_FILE = "info_pick_v0.json"
MANIFEST_FILE = "manifest.json"
STANDIN_VERSION = 1
ROBOSUITE_VERSION = "1.5.2"
# ManiSkill's PickSingleYCB skips these real YCB objects as not graspable; so do we.
YCB_EXCLUDED = ("022_windex_bottle", "028_skillet_lid", "029_plate", "059_chain")
TABLE_TEXTURES = ("light-wood.png", "dark-wood.png")  # robosuite's (MIT); hard_ood uses dark-wood
HELDOUT_FRACTION = 0.2


def default_asset_dir() -> Path:
    """Where set-up writes the stand-in set and textures: ``$PVM_MBRL_ASSET_DIR`` or inside the venv."""
    return Path(os.environ.get("PVM_MBRL_ASSET_DIR") or Path(sys.prefix) / "share" / "pvm-mbrl" / "maniskill")


def maniskill_asset_dir() -> Path:
    """The user's ManiSkill asset folder (where ``python -m mani_skill.utils.download_asset ycb`` puts YCB)."""
    return Path(os.environ.get("MS_ASSET_DIR") or Path.home() / ".maniskill" / "data")


# ----------------------------------------------------------------------------------------- the stand-in set
@dataclass(frozen=True)
class ObjectSpec:
    """One stand-in object: where its mesh comes from and how to size and colour it.

    ``source``: ``robosuite:<mesh>`` / ``maniskill:<path in the package>`` / ``box`` ``cylinder`` ``sphere``
    ``capsule`` ``cone`` (procedural, ``dims`` in metres). ``up``: the mesh axis that points up (glTF is y-up).
    ``size``: the longest side after scaling (metres), so every object fits the Panda's 8 cm gripper one way.
    """

    id: str
    source: str
    size: float
    texture: str | None = None        # a robosuite texture name, mapped by the mesh's UVs or a box projection
    color: tuple[float, float, float] = (0.8, 0.8, 0.8)
    up: str = "z"
    dims: tuple[float, ...] = field(default_factory=tuple)
    sections: int = 32
    density: float = 1000.0


STANDIN_OBJECTS: tuple[ObjectSpec, ...] = (
    ObjectSpec("s01_milk_carton", "robosuite:milk", 0.14, texture="ceramic.png"),
    ObjectSpec("s02_cereal_box", "robosuite:cereal", 0.15, texture="cereal.png", density=400),
    ObjectSpec("s03_soda_can", "robosuite:can", 0.10, texture="soda.png"),
    ObjectSpec("s04_bread_loaf", "robosuite:bread", 0.06, texture="bread.png", density=300),
    ObjectSpec("s05_lemon", "robosuite:lemon", 0.065, texture="lemon.png"),
    ObjectSpec("s06_glass_bottle", "robosuite:bottle", 0.15, texture="glass.png"),
    ObjectSpec("s07_apple", "maniskill:envs/tasks/humanoid/assets/apple_1.glb", 0.075, up="y"),
    ObjectSpec("s08_bowl", "maniskill:envs/tasks/humanoid/assets/frl_apartment_bowl_07.glb", 0.075, up="y"),
    ObjectSpec("s09_cardboard_box", "maniskill:envs/tasks/humanoid/assets/cardboard_box/textured.obj", 0.09,
               up="y", density=300),
    ObjectSpec("s10_plastic_bottle", "maniskill:assets/deformable_manipulation/bottle.glb", 0.13,
               color=(0.45, 0.7, 0.95)),
    ObjectSpec("s11_beaker", "maniskill:assets/deformable_manipulation/beaker.glb", 0.07, color=(0.9, 0.9, 0.95)),
    ObjectSpec("s12_purple_u_block", "maniskill:envs/tasks/fmb/assets/purple_u.glb", 0.09),
    ObjectSpec("s13_blue_u_block", "maniskill:envs/tasks/fmb/assets/blue_u.glb", 0.09),
    ObjectSpec("s14_green_bridge", "maniskill:envs/tasks/fmb/assets/green_bridge.glb", 0.12),
    ObjectSpec("s15_yellow_peg", "maniskill:envs/tasks/fmb/assets/yellow_peg.glb", 0.12),
    ObjectSpec("s16_black_fixture", "maniskill:envs/tasks/fmb/assets/reorienting_fixture.glb", 0.09),
    ObjectSpec("s17_red_cube", "box", 0.05, color=(0.85, 0.1, 0.1), dims=(0.05, 0.05, 0.05)),
    ObjectSpec("s18_wooden_block", "box", 0.08, texture="light-wood.png", dims=(0.08, 0.045, 0.04), density=600),
    ObjectSpec("s19_brass_tower", "box", 0.11, texture="brass-ambra.png", dims=(0.04, 0.04, 0.11)),
    ObjectSpec("s20_green_cylinder", "cylinder", 0.08, color=(0.1, 0.6, 0.2), dims=(0.025, 0.08)),
    ObjectSpec("s21_steel_tin", "cylinder", 0.1, texture="steel-brushed.png", dims=(0.03, 0.1)),
    ObjectSpec("s22_orange_ball", "sphere", 0.06, color=(1.0, 0.5, 0.05), dims=(0.03,), density=300),
    ObjectSpec("s23_cyan_capsule", "capsule", 0.09, color=(0.1, 0.75, 0.8), dims=(0.022, 0.046)),
    ObjectSpec("s24_magenta_cone", "cone", 0.07, color=(0.8, 0.1, 0.6), dims=(0.035, 0.07)),
    ObjectSpec("s25_clay_hex_prism", "cylinder", 0.07, texture="clay.png", dims=(0.035, 0.06), sections=6),
    ObjectSpec("s26_plaster_triangle", "cylinder", 0.07, texture="pink-plaster.png", dims=(0.04, 0.055),
               sections=3),
    ObjectSpec("s27_blue_wood_plank", "box", 0.1, texture="blue-wood.png", dims=(0.1, 0.035, 0.03), density=600),
)


class _RobosuiteFiles:
    """Reads robosuite's asset files from an installed package or from its wheel (a zip) without importing it."""

    def __init__(self, wheel: Path | None = None):
        self._zip, self._site = None, None
        spec = find_spec("robosuite") if wheel is None else None
        if spec and spec.submodule_search_locations:
            self._site = Path(next(iter(spec.submodule_search_locations))).parent
        elif wheel is not None:
            self._zip = zipfile.ZipFile(wheel)
        else:
            raise FileNotFoundError(
                f"the stand-in objects need robosuite=={ROBOSUITE_VERSION}'s meshes: pass --robosuite-wheel PATH "
                f"(from `pip download --no-deps robosuite=={ROBOSUITE_VERSION}`) or install robosuite")

    def _read(self, name: str) -> bytes:
        return self._zip.read(name) if self._zip is not None else (self._site / name).read_bytes()

    def read(self, relative: str) -> bytes:
        return self._read(f"robosuite/{relative}")

    def license(self) -> bytes:
        return self._read(f"robosuite-{ROBOSUITE_VERSION}.dist-info/licenses/LICENSE")

    def extract(self, relative: str, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.read(relative))
        return target


def _maniskill_package_dir() -> Path:
    spec = find_spec("mani_skill")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mani_skill is not installed (pip install mani_skill==3.0.1)")
    return Path(next(iter(spec.submodule_search_locations)))


def _procedural_mesh(spec: ObjectSpec):
    import trimesh

    kind, dims = spec.source, spec.dims
    if kind == "box":
        return trimesh.creation.box(extents=dims)
    if kind == "cylinder":
        return trimesh.creation.cylinder(radius=dims[0], height=dims[1], sections=spec.sections)
    if kind == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=dims[0])
    if kind == "capsule":
        return trimesh.creation.capsule(radius=dims[0], height=dims[1], count=[24, 24])
    if kind == "cone":
        return trimesh.creation.cone(radius=dims[0], height=dims[1], sections=spec.sections)
    raise ValueError(f"unknown procedural shape {kind!r}; choose one of: box, cylinder, sphere, capsule, cone")


def _box_projection_uv(vertices: np.ndarray, faces: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Unshared vertices with UVs from the plane each face is most parallel to (a texture on every side)."""
    corners = vertices[faces]                                   # (F, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    axis = np.abs(normals).argmax(1)
    planes = np.array([[1, 2], [0, 2], [0, 1]])[axis]           # drop the dominant axis
    uv = np.take_along_axis(corners, planes[:, None, :].repeat(3, 1), 2) / scale + 0.5
    return corners.reshape(-1, 3), uv.reshape(-1, 2)


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray | None,
               texture: str | None, color: tuple[float, float, float]) -> None:
    """A minimal OBJ + MTL that SAPIEN's loader reads: a textured or plain-coloured material."""
    mtl = path.with_suffix(".mtl")
    lines = [f"newmtl material_0\nKa 1 1 1\nKd {color[0]:.3f} {color[1]:.3f} {color[2]:.3f}\nKs 0.1 0.1 0.1\n"
             "Ns 20\nd 1\nillum 2\n"]
    if texture:
        lines.append(f"map_Kd {texture}\n")
    mtl.write_text("".join(lines))
    out = [f"mtllib {mtl.name}\nusemtl material_0\n"]
    out += [f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices]
    if uv is not None:
        out += [f"vt {u:.6f} {v:.6f}\n" for u, v in uv]
        out += [f"f {a}/{a} {b}/{b} {c}/{c}\n" for a, b, c in faces + 1]
    else:
        out += [f"f {a} {b} {c}\n" for a, b, c in faces + 1]
    path.write_text("".join(out))


def _source_mesh(spec: ObjectSpec, robosuite: _RobosuiteFiles, work: Path):
    """The spec's mesh as a trimesh, with UVs and its texture image (or ``None`` and a base colour)."""
    import trimesh

    image, color = None, spec.color
    if spec.source.startswith("robosuite:"):
        name = spec.source.split(":", 1)[1]
        obj = robosuite.extract(f"models/assets/objects/meshes/{name}.obj", work / f"{name}.obj")
        mesh = trimesh.load(obj, force="mesh", process=False)
    elif spec.source.startswith("maniskill:"):
        mesh = trimesh.load(_maniskill_package_dir() / spec.source.split(":", 1)[1], force="mesh", process=False)
        material = mesh.visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        factor = getattr(material, "baseColorFactor", None)
        if image is None and factor is not None and spec.color == ObjectSpec.color:
            color = tuple(float(c) / 255 for c in factor[:3])
    else:
        mesh = _procedural_mesh(spec)
    if spec.texture:
        image = robosuite.read(f"models/assets/textures/{spec.texture}")
    return mesh, image, color


def build_standin_object(spec: ObjectSpec, models_dir: Path, robosuite: _RobosuiteFiles) -> dict:
    """Write one object's ``textured.obj`` (+ texture) and convex ``collision.ply``; return its info entry."""
    import trimesh

    target = models_dir / spec.id
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as work:
        mesh, image, color = _source_mesh(spec, robosuite, Path(work))
    vertices = np.asarray(mesh.vertices, np.float64)
    if spec.up == "y":  # glTF's y-up to z-up
        vertices = vertices @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float64)
    vertices = vertices - (vertices.max(0) + vertices.min(0)) / 2          # centre the bounding box
    vertices *= spec.size / np.ptp(vertices, 0).max()
    faces = np.asarray(mesh.faces, np.int64)
    uv = getattr(mesh.visual, "uv", None)
    if spec.texture and (uv is None or len(uv) != len(vertices)):
        vertices, uv = _box_projection_uv(vertices, faces, spec.size)
        faces = np.arange(len(vertices)).reshape(-1, 3)
    texture_name = None
    if image is not None:
        texture_name = "texture.png"
        if isinstance(image, bytes):
            (target / texture_name).write_bytes(image)
        else:
            image.convert("RGB").save(target / texture_name)
    _write_obj(target / "textured.obj", vertices, faces, uv if texture_name else None, texture_name, color)
    hull = trimesh.Trimesh(vertices, faces, process=True).convex_hull
    hull.export(target / "collision.ply", encoding="ascii")  # SAPIEN misreads some binary PLYs (segfault)
    return {"bbox": {"min": vertices.min(0).round(5).tolist(), "max": vertices.max(0).round(5).tolist()},
            "scales": [1.0], "density": spec.density}


def check_object(root: Path, object_id: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Drop the object onto a plane in a child process; a crash or a bad simulation rejects it."""
    cmd = [sys.executable, "-m", "pvm_mbrl.envs.tabletop_objects", "check", str(root), object_id]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return False, f"check timed out after {timeout:.0f} s"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return False, f"exit status {done.returncode}: {tail[0]}"
    return True, done.stdout.strip().splitlines()[-1]


def build_object_actor(scene, root: Path, object_id: str, info: dict, name: str | None = None,
                       kinematic: bool = False):
    """An actor builder for one object of a YCB-layout folder (what ManiSkill's YCB builder does, any root)."""
    model_dir = root / YCB_SUBDIR / "models" / object_id
    scale = [info.get("scales", [1.0])[0]] * 3
    builder = scene.create_actor_builder()
    builder.add_multiple_convex_collisions_from_file(filename=str(model_dir / "collision.ply"), scale=scale,
                                                     density=info.get("density", 1000))
    builder.add_visual_from_file(filename=str(model_dir / "textured.obj"), scale=scale)
    return builder


def _check_main(root: Path, object_id: str) -> None:
    """Child-process body of ``check_object``: load, drop from four yaws, demand a sane resting pose."""
    import sapien

    info = json.loads((root / YCB_SUBDIR / INFO_FILE).read_text())[object_id]
    scene = sapien.Scene()
    scene.set_timestep(1 / 100)
    scene.add_ground(0.0)
    height = info["bbox"]["max"][2] - info["bbox"]["min"][2]
    actors = []
    for k, yaw in enumerate(np.linspace(0, np.pi, 4, endpoint=False)):
        builder = build_object_actor(scene, root, object_id, info)
        pose = sapien.Pose(p=[0.3 * k, 0, height / 2 + 0.03], q=[np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
        builder.set_initial_pose(pose)
        actors.append(builder.build(name=f"{object_id}-{k}"))
    for _ in range(300):
        scene.step()
    for k, actor in enumerate(actors):
        body = actor.find_component_by_type(sapien.physx.PhysxRigidDynamicComponent)
        p, v = np.asarray(actor.pose.p), np.asarray(body.linear_velocity)
        if not (np.isfinite(p).all() and body.mass > 0):
            raise SystemExit(f"drop {k}: non-finite pose {p} or mass {body.mass}")
        if p[2] < -0.005 or p[2] > height + 0.05 or abs(p[0] - 0.3 * k) > 0.15 or abs(p[1]) > 0.15:
            raise SystemExit(f"drop {k}: object ended at {p.round(3)} (fell through, bounced or slid away)")
        if np.linalg.norm(v) > 0.05:
            raise SystemExit(f"drop {k}: still moving at {np.linalg.norm(v):.3f} m/s after 3 s")
    print(f"ok: mass {body.mass:.3f} kg, rests at z={p[2]:.3f} m")


def build_standin_set(root: Path | None = None, robosuite_wheel: Path | None = None,
                      specs: tuple[ObjectSpec, ...] = STANDIN_OBJECTS, progress: bool = True) -> Path:
    """Write the stand-in set and the table textures under ``root``; only objects that pass the check go in
    ``info_pick_v0.json``, and ``manifest.json`` records every object's source, size and check result."""
    root = root or default_asset_dir()
    ycb = root / YCB_SUBDIR
    (ycb / "models").mkdir(parents=True, exist_ok=True)
    robosuite = _RobosuiteFiles(robosuite_wheel)
    for name in TABLE_TEXTURES:
        robosuite.extract(f"models/assets/textures/{name}", root / "textures" / name)
    (root / "textures" / "LICENSE-robosuite").write_bytes(robosuite.license())
    info, records = {}, []
    for i, spec in enumerate(specs):
        entry = build_standin_object(spec, ycb / "models", robosuite)
        (ycb / INFO_FILE).write_text(json.dumps({spec.id: entry}))      # what the checking process reads
        ok, message = check_object(root, spec.id)
        if ok:
            info[spec.id] = entry
        else:
            shutil.rmtree(ycb / "models" / spec.id)
        records.append({"id": spec.id, "source": spec.source, "size_m": spec.size, "texture": spec.texture,
                        "bbox": entry["bbox"], "density": spec.density, "accepted": ok, "check": message})
        if progress:
            print(f"[objects] {i + 1}/{len(specs)} {spec.id}: {'ok' if ok else 'REJECTED'} ({message})", flush=True)
    (ycb / INFO_FILE).write_text(json.dumps(info, indent=1))
    manifest = {"kind": "stand-in", "version": STANDIN_VERSION, "robosuite": ROBOSUITE_VERSION,
                "licenses": {"robosuite": "MIT", "mani_skill": "Apache-2.0", "procedural": "this project"},
                "objects": records}
    (ycb / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    return root


def standin_set_is_current(root: Path | None = None) -> bool:
    """True when ``root`` holds a complete stand-in set of this version (set-up then skips the build)."""
    root = root or default_asset_dir()
    try:
        manifest = json.loads((root / YCB_SUBDIR / MANIFEST_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    textures = all((root / "textures" / name).exists() for name in TABLE_TEXTURES)
    return textures and manifest.get("version") == STANDIN_VERSION and (root / YCB_SUBDIR / INFO_FILE).exists()


# ----------------------------------------------------------------------------------------- using a set
@dataclass(frozen=True)
class ObjectSet:
    """The objects an env samples from: a YCB-layout root, its ids and info, and whether it is real YCB."""

    root: Path
    info: dict[str, dict]
    real_ycb: bool
    textures_dir: Path

    @property
    def ids(self) -> list[str]:
        return sorted(self.info)

    def manifest(self) -> dict:
        """What a run records: the set's origin, its objects and (for stand-ins) how each was made."""
        path = self.root / YCB_SUBDIR / MANIFEST_FILE
        base = json.loads(path.read_text()) if path.exists() else {"kind": "real-ycb" if self.real_ycb else "?"}
        return {**base, "root": str(self.root), "real_ycb": self.real_ycb, "ids": self.ids}


def resolve_object_set(asset_dir: str | Path | None = None) -> ObjectSet:
    """Real YCB from ``asset_dir`` or the user's ManiSkill folder if it is there, else the built stand-in set."""
    textures = default_asset_dir() / "textures"
    candidates = [Path(asset_dir)] if asset_dir else [maniskill_asset_dir(), default_asset_dir()]
    for root in candidates:
        info_path = root / YCB_SUBDIR / INFO_FILE
        if info_path.exists():
            info = {k: v for k, v in json.loads(info_path.read_text()).items() if k not in YCB_EXCLUDED}
            real = not (root / YCB_SUBDIR / MANIFEST_FILE).exists()
            if len(info) < 5:
                raise ValueError(f"{info_path} lists only {len(info)} usable objects; an 80/20 split needs >= 5")
            return ObjectSet(root, info, real, textures)
    raise FileNotFoundError(
        f"no table-top objects: neither real YCB ({' nor '.join(str(c / YCB_SUBDIR) for c in candidates)}) nor the "
        "stand-in set was found. Run `bash scripts/setup.sh` (or `python -m pvm_mbrl.envs.tabletop_objects build`).")


def split_objects(ids: list[str], seed: int, heldout_fraction: float = HELDOUT_FRACTION
                  ) -> tuple[list[str], list[str]]:
    """The run seed's split of ``ids`` into training (80%) and held-out (20%) objects, each sorted."""
    ids = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    heldout = max(1, round(heldout_fraction * len(ids)))
    return sorted(ids[i] for i in order[heldout:]), sorted(ids[i] for i in order[:heldout])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pvm_mbrl.envs.tabletop_objects", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the stand-in object set (skipped when current)")
    build.add_argument("--dir", type=Path, default=None, help=f"target (default {default_asset_dir()})")
    build.add_argument("--robosuite-wheel", type=Path, default=None, help="robosuite wheel to take meshes from")
    build.add_argument("--force", action="store_true", help="rebuild even when the set is current")
    check = commands.add_parser("check", help="(internal) drop one object in this process")
    check.add_argument("root", type=Path)
    check.add_argument("object_id")
    args = parser.parse_args(argv)
    if args.command == "check":
        _check_main(args.root, args.object_id)
        return 0
    if not args.force and standin_set_is_current(args.dir):
        print(f"[objects] stand-in set present in {args.dir or default_asset_dir()}")
        return 0
    root = build_standin_set(args.dir, args.robosuite_wheel)
    accepted = len(json.loads((root / YCB_SUBDIR / INFO_FILE).read_text()))
    print(f"[objects] {accepted} objects in {root / YCB_SUBDIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
