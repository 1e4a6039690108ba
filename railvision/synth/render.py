"""Headless OpenGL rasteriser (moderngl over EGL; Mesa llvmpipe on CPU-only machines).

One pass draws a shadow map from the sun, one draws colour + coverage + an integer
instance-id attachment (the source of the labels), and a tiny pass per vehicle measures
its unoccluded projected area, so labels can drop cars that are mostly hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from railvision.synth import SynthError
from railvision.synth.geometry import VERTEX_ATTRS, VERTEX_FORMAT, SceneMesh
from railvision.synth.scene import Camera, Scene, bend

if TYPE_CHECKING:
    import moderngl

EGL_HELP = (
    "cannot create a headless OpenGL context over EGL ({err}); install the Debian packages "
    "libegl1 libgl1 libgl1-mesa-dri libegl-mesa0 (apt-get install libegl1 libgl1 libgl1-mesa-dri libegl-mesa0) "
    "and the 'synth' extra (pip install 'railvision[synth]')"
)

_VS = """
#version 330
uniform mat4 mvp;
uniform mat4 light_mvp;
uniform float normal_offset;
in vec3 in_pos; in vec3 in_nrm; in vec3 in_col; in float in_mat; in float in_inst;
out vec3 v_pos; out vec3 v_nrm; out vec3 v_col; out vec4 v_lpos;
flat out int v_mat; flat out int v_inst;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_pos = in_pos; v_nrm = in_nrm; v_col = in_col;
    v_lpos = light_mvp * vec4(in_pos + in_nrm * normal_offset, 1.0);
    v_mat = int(in_mat + 0.5); v_inst = int(in_inst + 0.5);
}
"""

_FS = """
#version 330
uniform vec3 sun_dir; uniform vec3 sun_col; uniform vec3 amb_col; uniform vec3 cam_pos;
uniform vec3 haze_col; uniform float beta; uniform vec3 band; uniform float water_from; uniform float shadow_strength;
uniform vec2 curve;  // (x0, signed radius; 0 = straight)
uniform float snow;  // cover of snow on up-facing surfaces, 0..1
uniform sampler2DShadow shadow_map; uniform float texel;
in vec3 v_pos; in vec3 v_nrm; in vec3 v_col; in vec4 v_lpos;
flat in int v_mat; flat in int v_inst;
layout(location = 0) out vec4 f_col;
layout(location = 1) out uint f_inst;

float hash(vec3 p) {
    p = fract(p * 0.3183099 + 0.1); p *= 17.0;
    return fract(p.x * p.y * p.z * (p.x + p.y + p.z));
}
float noise(vec3 x) {
    vec3 i = floor(x); vec3 f = fract(x); f = f * f * (3.0 - 2.0 * f);
    vec2 e = vec2(1.0, 0.0);
    float lo = mix(mix(hash(i), hash(i + e.xyy), f.x), mix(hash(i + e.yxy), hash(i + e.xxy), f.x), f.y);
    float hi = mix(mix(hash(i + e.yyx), hash(i + e.xyx), f.x), mix(hash(i + e.yxx), hash(i + e.xxx), f.x), f.y);
    return mix(lo, hi, f.z);
}
float fbm(vec3 p) {
    float a = 0.5, s = 0.0;
    for (int i = 0; i < 3; i++) { s += a * noise(p); p *= 2.03; a *= 0.5; }
    return s / 0.875;
}

void main() {
    vec3 n = normalize(v_nrm);
    if (!gl_FrontFacing) n = -n;
    vec3 col = v_col;
    float spec = 0.0;
    float lat = curve.y == 0.0 ? v_pos.y : curve.y - sign(curve.y) * length(v_pos.xy - curve);  // across the track
    float side_dist = (lat - band.x) * sign(band.x - cam_pos.y);  // > 0 beyond the tracks
    if (v_mat == 1) { col *= 0.75 + 0.5 * noise(v_pos * 7.0); col *= 0.85 + 0.3 * fbm(v_pos * 0.3); }
    else if (v_mat == 2 && water_from > 0.0 && side_dist < -water_from) {  // river between camera and track
        col = mix(vec3(0.09, 0.12, 0.13), haze_col * 0.85, 0.35 + 0.3 * fbm(v_pos * vec3(0.01, 0.4, 1.0)));
        spec = 0.6;
    }
    else if (v_mat == 2) {
        col *= 0.6 + 0.8 * fbm(v_pos * vec3(0.06, 0.06, 0.2));
        col *= 0.85 + 0.3 * noise(v_pos * 0.9);  // tufts and stones
        col = mix(col, col.bgr * 1.2 + 0.05, 0.35 * fbm(v_pos * 0.013));
    }
    else if (v_mat == 3) {
        if (abs(n.z) < 0.5) {  // corrugation ribs
            float r = fract((v_pos.x + v_pos.y) / 0.6);
            col *= 0.82 + 0.3 * smoothstep(0.0, 0.15, r) * (1.0 - smoothstep(0.45, 0.6, r));
        }
        col *= 0.85 + 0.3 * fbm(v_pos * vec3(0.7, 0.7, 2.5));
    }
    else if (v_mat == 4) { col *= 0.7 + 0.6 * fbm(v_pos * vec3(1.1, 1.1, 1.6)); }
    else if (v_mat == 5) { col = vec3(0.04, 0.05, 0.06) + 0.25 * amb_col * max(n.z + 0.3, 0.0); spec = 0.3; }
    else if (v_mat == 7) {
        float r = fbm(v_pos * vec3(0.9, 0.9, 3.0));
        col = mix(col, vec3(0.26, 0.14, 0.08), smoothstep(0.5, 0.8, r) * 0.55);
        spec = 0.08;
    }
    if (v_inst > 0) {
        col *= 0.8 + 0.35 * noise(v_pos * 1.7);
        col *= mix(0.6, 1.0, smoothstep(0.6, 2.4, v_pos.z));
    }
    if (snow > 0.0 && spec < 0.5 && v_mat != 5)
        col = mix(col, vec3(1.0, 1.02, 1.06), snow * smoothstep(0.5, 0.85, n.z) * (0.8 + 0.2 * noise(v_pos * 1.3)));
    float lit = 1.0;
    vec3 lp = v_lpos.xyz / v_lpos.w * 0.5 + 0.5;
    if (all(greaterThan(lp, vec3(0.0))) && all(lessThan(lp, vec3(1.0)))) {
        lit = 0.0;
        for (int i = -1; i <= 1; i += 2) for (int j = -1; j <= 1; j += 2)
            lit += 0.25 * texture(shadow_map, vec3(lp.xy + vec2(i, j) * texel * 0.7, lp.z - 0.0015));
    }
    float diff = max(dot(n, sun_dir), 0.0) * lit;
    vec3 h = normalize(sun_dir + normalize(cam_pos - v_pos));
    vec3 c = col * (amb_col * (0.7 + 0.3 * max(n.z, 0.0)) + sun_col * diff);
    c += spec * sun_col * pow(max(dot(n, h), 0.0), 24.0) * lit;
    float t = exp(-beta * distance(v_pos, cam_pos));
    c = c * t + haze_col * (1.0 - t);
    float alpha = 1.0;
    if (v_mat == 6) { f_col = vec4(0.0, 0.0, 0.0, (1.0 - lit) * shadow_strength); f_inst = 0u; return; }
    if (v_mat == 2 && band.y > 0.0) {  // ground strip: fades out beyond the tracks, see-through on the near side
        alpha = side_dist > 0.0 ? 1.0 - smoothstep(band.y, band.y * 1.5 + 1.0, side_dist)
                                : mix(band.z, 1.0, smoothstep(-band.y * 1.5 - 1.0, -band.y, side_dist));
    }
    f_col = vec4(c, alpha);
    f_inst = uint(v_inst);
}
"""

_DEPTH_VS = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
void main() { gl_Position = mvp * vec4(in_pos, 1.0); }
"""

_MASK_FS = """
#version 330
out vec4 f_col;
void main() { f_col = vec4(1.0); }
"""

SHADOW_SIZE = 1024
ALONE_SIZE = 64
ALONE_GRID = 16  # tiles per atlas side


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    f = target - eye
    f = f / np.linalg.norm(f)
    s = np.cross(f, up)
    if np.linalg.norm(s) < 1e-6:
        s = np.cross(f, np.array([0.0, 1.0, 0.0]))
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fov_deg: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(np.deg2rad(fov_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0] = m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def orthographic(half: float, near: float, far: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 1.0 / half
    m[2, 2] = -2.0 / (far - near)
    m[2, 3] = -(far + near) / (far - near)
    return m


def camera_matrix(cam: Camera) -> np.ndarray:
    view = look_at(np.asarray(cam.eye), np.asarray(cam.target), np.asarray(cam.up))
    proj = (
        orthographic(cam.half_extent, cam.near, cam.far) if cam.ortho else perspective(cam.fov_deg, cam.near, cam.far)
    )
    return proj @ view


def light_matrix(scene: Scene) -> np.ndarray:
    centre = np.asarray(scene.camera.target, float)
    sun = np.asarray(scene.light.sun_dir)
    up = np.array([0.0, 0.0, 1.0]) if abs(sun[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    view = look_at(centre + sun * 1000.0, centre, up)
    return orthographic(scene.light.shadow_extent, 900.0, 1150.0) @ view


def cull_to_view(scene: Scene, margin: float = 1.05) -> Scene:
    """Drop vehicles whose bounds fall wholly outside the frame (or behind the camera): far fewer triangles."""
    if not scene.vehicles:
        return scene
    mvp = camera_matrix(scene.camera)
    keep = []
    for v in scene.vehicles:
        xs, ys, zs = (v.x - v.length / 2, v.x + v.length / 2), (v.y - 1.7, v.y + 1.7), (0.0, 5.2)
        corners = bend(np.array([[x, y, z] for x in xs for y in ys for z in zs]), scene.curve)
        clip = np.column_stack([corners, np.ones(8)]) @ mvp.T
        if np.any(clip[:, 3] <= 1e-6):
            keep.append(v)  # crosses the camera plane: let the renderer judge it
            continue
        ndc = clip[:, :2] / clip[:, 3:4]
        if np.all(ndc.max(axis=0) > -margin) and np.all(ndc.min(axis=0) < margin):
            keep.append(v)
    return replace(scene, vehicles=tuple(keep))


def _gl(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()


@dataclass
class RenderResult:
    rgba: np.ndarray  # (H, W, 4) float32, colour premultiplied by coverage, at the render size
    instances: np.ndarray  # (H, W) uint16; 0 = not a vehicle, i = scene.vehicles[i - 1]
    full_area: dict[int, float]  # instance -> unoccluded projected area in render pixels (in-frame part if it
    # reaches behind the camera)


def gl_context() -> moderngl.Context:
    """A headless moderngl context over EGL, or a ``SynthError`` naming the packages to install."""
    try:
        import moderngl
    except ImportError as exc:
        raise SynthError(EGL_HELP.format(err=exc)) from exc
    try:
        return moderngl.create_standalone_context(backend="egl")
    except Exception as exc:  # moderngl / glcontext raise plain Exceptions
        raise SynthError(EGL_HELP.format(err=exc)) from exc


class Renderer:
    """One GL context and its framebuffers; create one per process."""

    def __init__(self, size: int) -> None:
        self.ctx = ctx = gl_context()
        self.size = size
        self.prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        self.depth_prog = ctx.program(vertex_shader=_DEPTH_VS, fragment_shader=_MASK_FS)
        self.colour = ctx.texture((size, size), 4, dtype="f1")
        self.inst = ctx.texture((size, size), 1, dtype="u2")
        self.fbo = ctx.framebuffer([self.colour, self.inst], ctx.depth_renderbuffer((size, size)))
        self.shadow_tex = ctx.depth_texture((SHADOW_SIZE, SHADOW_SIZE))
        self.shadow_tex.compare_func = "<="
        self.shadow_tex.repeat_x = self.shadow_tex.repeat_y = False
        self.shadow_fbo = ctx.framebuffer(depth_attachment=self.shadow_tex)
        atlas = (ALONE_SIZE * ALONE_GRID, ALONE_SIZE * ALONE_GRID)
        self.alone_fbo = ctx.framebuffer([ctx.renderbuffer(atlas, 1)], ctx.depth_renderbuffer(atlas))

    def release(self) -> None:
        self.ctx.release()

    def render(self, scene: Scene, smesh: SceneMesh, haze_colour: np.ndarray) -> RenderResult:
        ctx = self.ctx
        mesh, ranges = smesh.vertices, smesh.ranges
        vbo = ctx.buffer(np.ascontiguousarray(mesh, dtype=np.float32).tobytes())
        vao = ctx.vertex_array(self.prog, [(vbo, VERTEX_FORMAT, *VERTEX_ATTRS)])
        depth_vao = ctx.vertex_array(self.depth_prog, [(vbo, "3f 32x", "in_pos")])
        mvp = camera_matrix(scene.camera)
        lmvp = light_matrix(scene)
        ctx.enable(ctx.DEPTH_TEST)
        ctx.disable(ctx.CULL_FACE | ctx.BLEND)

        self.shadow_fbo.use()
        self.shadow_fbo.clear(depth=1.0)
        self.depth_prog["mvp"].write(_gl(lmvp))
        if smesh.casters:
            depth_vao.render(vertices=smesh.casters)

        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        light = scene.light
        p = self.prog
        p["mvp"].write(_gl(mvp))
        p["light_mvp"].write(_gl(lmvp))
        p["normal_offset"].value = 2.5 * light.shadow_extent / SHADOW_SIZE
        p["texel"].value = 1.0 / SHADOW_SIZE
        p["sun_dir"].value = light.sun_dir
        p["sun_col"].value = light.sun_colour
        p["amb_col"].value = light.ambient
        p["cam_pos"].value = scene.camera.eye
        p["haze_col"].value = tuple(float(c) for c in haze_colour)
        p["beta"].value = scene.haze_beta
        p["band"].value = scene.ground_band
        p["water_from"].value = scene.water_from
        p["curve"].value = scene.curve
        p["snow"].value = scene.snow
        p["shadow_strength"].value = 0.25 if light.overcast else 0.6
        self.shadow_tex.use(0)
        p["shadow_map"].value = 0
        vao.render()
        rgba = np.frombuffer(self.fbo.read(components=4, attachment=0), np.uint8).reshape(self.size, self.size, 4)
        inst = np.frombuffer(self.fbo.read(components=1, attachment=1, dtype="u2"), np.uint16)
        inst = inst.reshape(self.size, self.size)
        # GL rows start at the bottom
        rgba = rgba[::-1].astype(np.float32) / 255.0
        inst = inst[::-1].copy()
        rgba[..., :3] *= rgba[..., 3:4]
        visible = np.bincount(inst.ravel(), minlength=len(ranges) + 1)
        full = self._full_areas(mesh, ranges, mvp, depth_vao, visible)
        for obj in (depth_vao, vao, vbo):
            obj.release()
        return RenderResult(rgba, inst, full)

    def _full_areas(
        self,
        mesh: np.ndarray,
        ranges: list[tuple[int, int, int]],
        mvp: np.ndarray,
        depth_vao: moderngl.VertexArray,
        visible: np.ndarray,
    ) -> dict[int, float]:
        """Each visible vehicle drawn alone into an atlas tile fitted to its projected bounds (one read-back).

        A vehicle that reaches behind the camera has no finite projection; its tile shows the whole frame.
        """
        out: dict[int, float] = {}
        jobs: list[tuple[int, int, int, np.ndarray, float]] = []
        for inst, first, count in ranges:
            if visible[inst] == 0:
                continue
            pts = mesh[first : first + count, 0:3]
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            clip = corners @ mvp.T
            if np.any(clip[:, 3] <= 1e-6):  # reaches behind the camera: compare with its part inside the frame
                jobs.append((inst, first, count, mvp, float(self.size) ** 2))
                continue
            ndc = clip[:, :2] / clip[:, 3:4]
            (x0, y0), (x1, y1) = ndc.min(axis=0), ndc.max(axis=0)
            sx, sy = 2.0 / max(x1 - x0, 1e-9), 2.0 / max(y1 - y0, 1e-9)
            crop = np.eye(4)
            crop[0, 0], crop[0, 3] = sx, -sx * (x0 + x1) / 2
            crop[1, 1], crop[1, 3] = sy, -sy * (y0 + y1) / 2
            rect = (x1 - x0) / 2 * self.size * (y1 - y0) / 2 * self.size
            jobs.append((inst, first, count, crop @ mvp, rect))
        per_atlas = ALONE_GRID**2
        for start in range(0, len(jobs), per_atlas):
            batch = jobs[start : start + per_atlas]
            self.alone_fbo.use()
            self.alone_fbo.viewport = (0, 0, ALONE_SIZE * ALONE_GRID, ALONE_SIZE * ALONE_GRID)
            self.alone_fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            for k, (_, first, count, matrix, _) in enumerate(batch):
                gy, gx = divmod(k, ALONE_GRID)
                self.alone_fbo.viewport = (gx * ALONE_SIZE, gy * ALONE_SIZE, ALONE_SIZE, ALONE_SIZE)
                self.depth_prog["mvp"].write(_gl(matrix))
                depth_vao.render(first=first, vertices=count)
            side = ALONE_SIZE * ALONE_GRID
            atlas = np.frombuffer(self.alone_fbo.read(components=1, viewport=(0, 0, side, side)), np.uint8)
            tiles = atlas.reshape(ALONE_GRID, ALONE_SIZE, ALONE_GRID, ALONE_SIZE) > 0
            hits = tiles.sum(axis=(1, 3))
            for k, (inst, _, _, _, rect) in enumerate(batch):
                gy, gx = divmod(k, ALONE_GRID)
                out[inst] = float(hits[gy, gx]) / ALONE_SIZE**2 * rect
        return out
