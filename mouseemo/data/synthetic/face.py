"""Procedural renderer of an IR-lit side view of a head-fixed mouse's face.

The mouse faces right. A frame is built on a float canvas a little larger than the output (so that
camera motion never reveals an empty border): a static per-session background (rig, body, lick spout),
then the moving parts drawn from one row of action units (see :mod:`.dynamics`): lower jaw and mouth,
tongue, head with fur, cheek, whisker pad, nose, eye, ear, whiskers and, while grooming, a paw. The
canvas is then warped by the camera pose, lit (vignetting, gain, offset), blurred and given sensor
noise from a pre-computed bank, and quantised to uint8.

Geometry is written in a 320x240 reference frame and mapped to the output size, so any ``(H, W)``
renders the same picture. Everything slow (fur texture, background, lighting, noise) is computed once
per renderer; a frame costs a few milliseconds at 240x320.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from mouseemo.data.synthetic.dynamics import NEUTRAL_POSE
from mouseemo.data.synthetic.identity import Identity
from mouseemo.data.synthetic.shapes import affine, catmull_rom, ellipse, rot, smooth_noise

REF_H, REF_W = 240, 320
_SHIFT = 4  # sub-pixel bits for OpenCV drawing: smooth motion instead of 1-pixel steps
_ONE = 1 << _SHIFT


#: Camera/lighting of a perfectly still, clean rig (for figures).
CLEAN_CAMERA: dict[str, float] = {"noise_std": 0.0, "blur_sigma": 0.0, "spout_dx": 0.0, "spout_dy": 0.0}

# --- reference geometry (mouse facing right) -----------------------------------------------------
_UPPER = np.array(
    [(-140, 190), (-30, 150), (0, 110), (30, 82), (65, 60), (105, 48), (145, 50), (180, 62), (210, 80),
     (238, 98), (260, 113), (275, 124)], np.float64)  # fmt: skip
_TIP = np.array([(283, 133), (286, 140), (282, 147)], np.float64)
_LIP = np.array([(268, 152), (246, 156), (224, 160), (206, 163)], np.float64)
_LOWER = np.array(
    [(192, 170), (166, 182), (132, 195), (96, 210), (62, 232), (32, 262), (-30, 290), (-140, 340)], np.float64
)  # fmt: skip
_HINGE = np.array([194.0, 163.0])
_JAW = np.array(
    [(194, 163), (222, 162), (244, 160), (256, 163), (254, 170), (238, 177), (214, 182), (190, 185),
     (168, 186), (172, 174)], np.float64)  # fmt: skip
_EYE = np.array([172.0, 96.0])
_EAR_PIVOT = np.array([112.0, 66.0])
_CHEEK = np.array([206.0, 132.0])
_PAD = np.array([250.0, 139.0])
_NOSE = np.array([279.0, 137.0])
_SPOUT_TIP = np.array([290.0, 186.0])
_LAYOUT_SCALE = 0.9  # the reference face fills the frame; leave room for camera motion


def _follicle_layout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whisker follicles on the pad: 4 rows (dorsal to ventral) of 4-5 arcs; offsets from the pad centre."""
    rows, cols, offsets = [], [], []
    for r, (dy, num) in enumerate([(-6.5, 4), (-2.2, 5), (2.2, 5), (6.5, 4)]):
        for c in range(num):
            dx = -11.0 + 22.0 * c / max(num - 1, 1) * (1 - 0.15 * abs(r - 1.5))
            rows.append(r)
            cols.append(c)
            offsets.append((dx, dy))
    return np.array(rows), np.array(cols), rot(np.array(offsets, np.float64), (0.0, 0.0), -18.0)


_WHISKER_T = np.linspace(0.0, 1.0, 9)[None, :, None]
_ROW_ELEVATION = np.deg2rad([-26.0, -9.0, 8.0, 24.0])


class FaceRenderer:
    """Renders frames of one animal in one session.

    Args:
        identity: the animal's appearance.
        size: output ``(H, W)``.
        camera: session camera parameters (:func:`.camera.sample_camera`); only ``noise_std``,
            ``blur_sigma``, ``spout_dx`` and ``spout_dy`` are read here, the per-frame pose comes with
            each row. ``None`` means a clean rig.
        seed: seeds the choice of noise-bank frames.

    Example:
        >>> from mouseemo.data.synthetic.dynamics import pose
        >>> from mouseemo.data.synthetic.identity import DEFAULT_IDENTITY
        >>> r = FaceRenderer(DEFAULT_IDENTITY, (240, 320))
        >>> r.render(pose("pain")).shape
        (240, 320)
    """

    def __init__(
        self,
        identity: Identity,
        size: tuple[int, int] = (240, 320),
        camera: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.identity = identity
        self.H, self.W = int(size[0]), int(size[1])
        cam = dict(CLEAN_CAMERA)
        cam.update(camera or {})
        self.noise_std = float(cam["noise_std"])
        self.s0 = min(self.H / REF_H, self.W / REF_W)
        self.margin = int(round(0.12 * max(self.H, self.W)))
        self.CH, self.CW = self.H + 2 * self.margin, self.W + 2 * self.margin
        m = self.margin
        c0x, c0y = (self.W - REF_W * self.s0) / 2 + m, (self.H - REF_H * self.s0) / 2 + m
        ref_to_canvas = affine(self.s0, 0.0, c0x, c0y)
        center = np.array([REF_W / 2, REF_H / 2])
        animal = (
            affine(1.0, 0.0, center[0] + 6.0 + identity.offset_x, center[1] + 12.0 + identity.offset_y)
            @ affine(_LAYOUT_SCALE * identity.head_scale, identity.tilt_deg)
            @ affine(1.0, 0.0, -center[0], -center[1])
        )
        self._A = (ref_to_canvas @ animal)[:2]
        self._R = (ref_to_canvas @ affine(1.0, 0.0, cam["spout_dx"], cam["spout_dy"]))[:2]
        self.px = (
            self.s0 * _LAYOUT_SCALE * identity.head_scale
        )  # canvas pixels per reference pixel on the animal
        self._blur_sigma = float(cam["blur_sigma"]) * self.s0
        self._rng = np.random.default_rng(seed)

        trng = np.random.default_rng(identity.texture_seed)
        self._fur = self._make_fur(trng)
        self._bg = self._make_background(trng)
        self._light = self._make_light()
        bank_rng = np.random.default_rng([identity.texture_seed, seed])
        self._noise = bank_rng.standard_normal((8, self.H + 16, self.W + 16)).astype(np.float32)
        self._img = np.empty((self.CH, self.CW), np.float32)
        rows, cols, offsets = _follicle_layout()
        self._follicle_offsets = offsets
        k = min(identity.num_whiskers, len(rows))
        self._w_rows, self._w_cols, self._w_index = rows[:k], cols[:k], np.arange(k)
        self._w_elev = _ROW_ELEVATION[self._w_rows]
        self._w_len = (
            (48.0 + 15.0 * (4 - self._w_cols)) * identity.whisker_len * (1 - 0.1 * np.abs(self._w_rows - 1.5))
        )

    # --- static layers ----------------------------------------------------------------------------
    def _make_fur(self, rng: np.random.Generator) -> np.ndarray:
        ident = self.identity
        shape = (self.CH, self.CW)
        fine = smooth_noise(rng, shape, 0.6 * self.px)
        # fur lies in strands: blur noise along the fur direction
        length = max(3, int(round(9 * self.px)) | 1)
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), -ident.fur_dir_deg, 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= kernel.sum()
        streak = cv2.filter2D(rng.standard_normal(shape).astype(np.float32), -1, kernel)
        streak /= streak.std() + 1e-6
        mottle = smooth_noise(rng, shape, 7 * self.px)
        tex = 1.0 + ident.fur_grain * (0.07 * fine + 0.09 * streak + 0.06 * mottle)
        return (ident.fur_level * tex).astype(np.float32)

    def _make_background(self, rng: np.random.Generator) -> np.ndarray:
        ident = self.identity
        yy = np.linspace(0.0, 1.0, self.CH, dtype=np.float32)[:, None]
        bg = ident.bg_level * (0.8 + 0.4 * yy) + 4.0 * smooth_noise(rng, (self.CH, self.CW), 20 * self.s0)
        self._img = bg.astype(np.float32)
        # head-fixation bar (rig, fixed to the camera)
        bar = np.array([(-60, 14), (150, 14), (150, 32), (-60, 32)], np.float64)
        self._fill([self._rig(bar)], 58.0 + 0.3 * ident.bg_level, soft=0.6)
        self._stroke([self._rig(np.array([(-60, 16.5), (150, 16.5)]))], 110.0, 1, alpha=0.7)
        # body and shoulder behind the head
        body = ellipse((25, 262), 150, 78, -8, 60)
        self._fill([self._ani(body)], self._fur, scale=0.55, soft=3.0 * self.px)
        # lick spout: a steel tube ending in front of the mouth
        tube = np.array([_SPOUT_TIP, _SPOUT_TIP + (60, 95)])
        self._stroke([self._rig(tube)], 120.0, max(1, int(round(7 * self.s0))))
        hi = tube + (-2.0, -0.5)
        self._stroke([self._rig(hi)], 205.0, max(1, int(round(1.5 * self.s0))), alpha=0.8)
        self._fill([self._rig(ellipse(_SPOUT_TIP, 3.6, 2.2, 58))], 70.0)
        return self._img.copy()

    def _make_light(self) -> np.ndarray:
        yy, xx = np.mgrid[0 : self.H, 0 : self.W].astype(np.float32)
        r2 = ((xx - self.W / 2) / (self.W / 2)) ** 2 + ((yy - self.H / 2) / (self.H / 2)) ** 2
        vignette = 1.0 - 0.18 * r2
        lamp = 0.9 + 0.22 * np.exp(
            -(((xx - 0.78 * self.W) / (0.5 * self.W)) ** 2 + ((yy - 0.45 * self.H) / (0.6 * self.H)) ** 2)
        )
        return (vignette * lamp).astype(np.float32)

    # --- drawing primitives (canvas pixels) --------------------------------------------------------
    def _ani(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self._A[:, :2].T + self._A[:, 2]

    def _rig(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self._R[:, :2].T + self._R[:, 2]

    def _box(self, polys, pad: float):
        allp = np.concatenate(polys)
        x0 = max(int(np.floor(allp[:, 0].min() - pad)), 0)
        y0 = max(int(np.floor(allp[:, 1].min() - pad)), 0)
        x1 = min(int(np.ceil(allp[:, 0].max() + pad)) + 1, self.CW)
        y1 = min(int(np.ceil(allp[:, 1].max() + pad)) + 1, self.CH)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def _mask(self, polys, box, thickness: int | None) -> np.ndarray:
        x0, y0, x1, y1 = box
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = [np.round((p - (x0, y0)) * _ONE).astype(np.int32) for p in polys]
        if thickness is None:
            cv2.fillPoly(mask, pts, 255, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(mask, pts, False, 255, thickness, cv2.LINE_AA, _SHIFT)
        return mask

    def _blend(self, mask: np.ndarray, box, target, scale=1.0, alpha: float = 1.0, soft: float = 0.0) -> None:
        x0, y0, x1, y1 = box
        if soft > 0.3:
            mask = cv2.GaussianBlur(mask, (0, 0), soft)
        w = mask.astype(np.float32) * (alpha / 255.0)
        roi = self._img[y0:y1, x0:x1]
        tgt = target[y0:y1, x0:x1] if isinstance(target, np.ndarray) else np.float32(target)
        if not isinstance(scale, float) or scale != 1.0:
            tgt = tgt * scale
        roi += (tgt - roi) * w

    def _fill(self, polys, target, scale=1.0, alpha: float = 1.0, soft: float = 0.0) -> None:
        box = self._box(polys, 3 * soft + 2)
        if box is not None:
            self._blend(self._mask(polys, box, None), box, target, scale, alpha, soft)

    def _stroke(self, lines, target, thickness: int, alpha: float = 1.0, soft: float = 0.0) -> None:
        box = self._box(lines, 3 * soft + thickness + 2)
        if box is not None:
            self._blend(self._mask(lines, box, thickness), box, target, 1.0, alpha, soft)

    def _dots(self, centres: np.ndarray, radius: float, target, scale=1.0, alpha: float = 1.0) -> None:
        box = self._box([centres], radius + 2)
        if box is None:
            return
        x0, y0, x1, y1 = box
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        r = max(int(round(radius * _ONE)), 1)
        for c in np.round((centres - (x0, y0)) * _ONE).astype(np.int32):
            cv2.circle(mask, (int(c[0]), int(c[1])), r, 255, -1, cv2.LINE_AA, _SHIFT)
        self._blend(mask, box, target, scale, alpha)

    def _shaded_fill(self, polys, scale: float, edge_sigma: float) -> None:
        """Fur-textured shape whose rim is darker (surfaces turning away from the IR lamp)."""
        box = self._box(polys, 3)
        if box is None:
            return
        mask = self._mask(polys, box, None)
        if min(mask.shape) < 8:
            self._blend(mask, box, self._fur, scale)
            return
        # the rim shading is smooth: blur a quarter-size mask, which is 10x cheaper than full size
        small = cv2.resize(mask, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        shade = cv2.resize(
            cv2.GaussianBlur(small, (0, 0), max(edge_sigma / 4, 0.5)), (mask.shape[1], mask.shape[0])
        )
        shade = shade.astype(np.float32) * (1 / 255.0)
        self._blend(mask, box, self._fur, scale * (0.45 + 0.55 * shade))

    # --- one frame -----------------------------------------------------------------------------------
    def render_canvas(self, au: Mapping[str, float]) -> np.ndarray:
        """Draw the face for one row of AUs on the (un-warped, noise-free) canvas; float32 (CH, CW)."""
        ident, px = self.identity, self.px
        g = {**NEUTRAL_POSE, **au}
        np.copyto(self._img, self._bg)
        phase = g["whisker_phase"]

        def stretch(p: np.ndarray) -> np.ndarray:
            # animal proportions: snout length beyond the eye, head height about the eye line
            q = p.copy()
            q[:, 0] = np.where(q[:, 0] > 180, 180 + (q[:, 0] - 180) * ident.snout_len, q[:, 0])
            q[:, 1] = _EYE[1] + (q[:, 1] - _EYE[1]) * ident.head_height
            return q

        nose_fwd = g["nose_fwd"] + 0.25 * g["sniff"] * np.sin(phase)
        nose_shift = np.array([9.0 * nose_fwd, 8.0 * g["nose_pos"]])

        def snout(p: np.ndarray) -> np.ndarray:
            # the nose moves the snout's tip fully and its root (behind x=200) not at all
            w = np.clip((p[:, 0] - 200.0) / 80.0, 0, 1)
            w = w * w * (3 - 2 * w)
            return p + w[:, None] * nose_shift

        # lower jaw and mouth (behind the head's lip)
        jaw_angle = 24.0 * (g["jaw_open"] + 0.35 * g["lick"])
        jaw = rot(_JAW + (8.0 * g["jaw_fwd"], 0.0), _HINGE, jaw_angle)
        lip = snout(_LIP.copy())
        mouth = np.vstack([[_HINGE], lip[::-1], jaw[3:0:-1]])
        self._fill([self._ani(stretch(mouth))], 14.0)
        self._shaded_fill([self._ani(stretch(catmull_rom(jaw, 4)))], 0.72, 5 * px)
        tongue = max(g["tongue"], g["lick"])
        if tongue > 0.05:
            # the tongue slides forward from inside the mouth, past the lips toward the spout
            root = 0.35 * lip[2] + 0.65 * jaw[1]
            front = 0.35 * lip[0] + 0.65 * jaw[3]
            tip = root + (front - root) * min(1.0, 1.6 * tongue)
            if tongue > 0.6:
                direction = (front - root) / (np.linalg.norm(front - root) + 1e-9)
                tip = front + direction * 16.0 * (tongue - 0.6) / 0.4 + (0.0, 4.0 * (tongue - 0.6))
            tongue_level = 0.5 * (ident.ear_level + ident.fur_level)
            self._stroke(
                [self._ani(stretch(np.array([root, tip])))],
                tongue_level,
                max(2, int(round(10 * px))),
                soft=0.8 * px,
            )

        # head: skull, snout and cheek outline
        upper = np.vstack([_UPPER, _TIP])
        bump = np.exp(-(((upper[:, 0] - 236.0) / 20.0) ** 2))
        upper[:, 1] -= 6.0 * g["nose_bulge"] * bump  # the nose bridge bulges upward
        upper = snout(upper)
        lower = _LOWER.copy()
        cheek_w = np.exp(-(((lower[:, 0] - 185.0) / 25.0) ** 2))
        lower[:, 1] += 4.0 * g["cheek_bulge"] * cheek_w
        head = np.vstack([catmull_rom(upper, 5), catmull_rom(np.vstack([upper[-1:], lip, lower]), 5)])
        self._shaded_fill([self._ani(stretch(head))], 1.0, 9 * px)

        # cheek: highlight on the bulge, shadow beneath it
        cb = g["cheek_bulge"]
        cheek = stretch(ellipse(_CHEEK + (0, 2 * cb), 19 + 6 * cb, 13 + 4 * cb, -15, 28))
        self._fill([self._ani(cheek)], self._fur, scale=1.12 + 0.18 * cb, alpha=0.8, soft=5 * px)
        shadow = stretch(ellipse(_CHEEK + (2, 15 + 4 * cb), 18 + 4 * cb, 3.5 + 2 * cb, -12, 24, arc=(0, 180)))
        self._fill([self._ani(shadow)], self._fur, scale=0.7, alpha=0.4 + 0.4 * cb, soft=2.5 * px)

        # whisker pad and nose leather follow the snout
        pad_c = _PAD + 0.8 * nose_shift
        pad = stretch(ellipse(pad_c, 17, 10.5, -18, 28))
        self._fill([self._ani(pad)], self._fur, scale=0.86, soft=2.5 * px)
        follicles = stretch(pad_c + self._follicle_offsets)
        self._dots(self._ani(follicles), 1.1 * px, self._fur, scale=0.5, alpha=0.8)
        nose_c = _NOSE + nose_shift + (0.0, -4.0 * g["nose_bulge"] * 0.3)
        self._fill([self._ani(stretch(ellipse(nose_c, 6.0, 8.5, 20, 28)))], ident.nose_level, soft=1.2 * px)
        self._fill(
            [self._ani(stretch(ellipse(nose_c + (2.5, 3.5), 1.6, 3.2, 30, 16)))],
            0.3 * ident.nose_level,
            soft=0.5 * px,
        )

        # eye: periocular fur, dark eyeball, specular highlight; creases when tightened
        opening = float(np.clip(g["eye_open"] * (1.0 - g["blink"]), 0.0, 1.45))
        a = 15.5 * ident.eye_size * (1.0 + 0.08 * max(opening - 1.0, 0.0))
        b = a * 0.88 * min(opening, 1.25)
        eye_c = stretch(_EYE[None])[0]
        self._fill(
            [self._ani(ellipse(eye_c, a + 5.5, max(b, 3.0) + 4.5, -12, 32))],
            self._fur,
            scale=0.72,
            soft=2.5 * px,
        )
        if b > 0.4:
            self._fill([self._ani(ellipse(eye_c, a, b, -12, 36))], 20.0, soft=0.4 * px)
        if opening > 0.3:
            hl = eye_c + (-0.32 * a, -0.35 * b)
            self._fill(
                [self._ani(ellipse(hl, 0.17 * a, 0.17 * a * min(1.0, opening), 0, 12))], 235.0, soft=0.4 * px
            )
        tight = float(np.clip((0.9 - opening) / 0.9, 0.0, 1.0))
        if tight > 0.02:
            creases = [
                self._ani(ellipse(eye_c, a + 2.5, b + 2.0, -12, 12, arc=(195, 345))),
                self._ani(ellipse(eye_c + (0, -4.5), a + 1.0, b + 2.0, -12, 10, arc=(205, 335))),
                self._ani(ellipse(eye_c, a + 2.0, b + 1.5, -12, 10, arc=(20, 160))),
            ]
            self._stroke(
                creases,
                0.35 * ident.fur_level,
                max(1, int(round(1.2 * px))),
                alpha=0.8 * tight,
                soft=0.4 * px,
            )

        # ear: rotates back about its base, drops and folds
        ea, ep = g["ear_angle"], g["ear_pos"]
        pivot = _EAR_PIVOT + (-6.0 * ea, 12.0 * ep + 3.0 * max(ea, 0.0))
        theta = 12.0 + 42.0 * ea + 20.0 * ep
        length = 44.0 * ident.ear_size * (1.0 - 0.25 * max(ep, 0.0))
        width = 33.0 * ident.ear_size * (1.0 - 0.35 * max(ea, 0.0)) * (1.0 + 0.12 * max(-ea, 0.0))
        axis = np.array([-np.sin(np.deg2rad(theta)), -np.cos(np.deg2rad(theta))])
        ear_c = pivot + 0.75 * length * axis
        outer = ellipse(ear_c, width, length, -theta, 40)
        outer = np.vstack([outer, [pivot + (8, 4)], [pivot + (-10, 6)]])
        self._fill([self._ani(stretch(outer))], self._fur, scale=0.92, soft=0.8 * px)
        inner_c = ear_c + 0.12 * length * axis + np.array([axis[1], -axis[0]]) * -0.1 * width
        inner = ellipse(inner_c, 0.68 * width, 0.74 * length, -theta, 36)
        self._fill([self._ani(stretch(inner))], ident.ear_level, soft=1.5 * px)
        fold = ellipse(pivot + 0.25 * length * axis, 0.45 * width, 0.22 * length, -theta, 24)
        self._fill([self._ani(stretch(fold))], 0.55 * ident.fur_level, alpha=0.7, soft=2.0 * px)

        # whiskers: 3-D fan (azimuth, elevation) projected onto the side view; fast whisking smears
        # them over the exposure (~8 ms), which is how fast whisking shows in a single frame
        amp, freq = 22.0 * g["whisk_amp"], g["whisk_freq"]
        smear = abs(amp * np.cos(phase)) * 2 * np.pi * freq * 0.008
        offsets = (-0.5, 0.0, 0.5) if smear > 3.0 else (0.0,)
        thick = max(1, int(round(self.s0)))
        bases = follicles[self._w_index][:, None, :]
        droop = np.array([0.0, 0.18])
        for sub in offsets:
            ph = phase + sub * 2 * np.pi * freq * 0.008
            az = (
                105.0
                + 10.0 * (4 - self._w_cols)
                - 55.0 * g["whisker_angle"]
                - amp * np.sin(ph - 0.15 * self._w_cols)
            )
            az = np.deg2rad(az)
            d = np.stack([np.cos(az) * np.cos(self._w_elev), 0.9 * np.sin(self._w_elev)], axis=1)[:, None, :]
            length_w = self._w_len[:, None, None]
            # whiskers droop with length
            curves = bases + length_w * (_WHISKER_T * d + droop * _WHISKER_T**2)
            pts = self._ani(curves.reshape(-1, 2)).reshape(curves.shape)
            lines = list(pts)
            proximal = list(pts[:, :4])
            alpha = 0.85 if len(offsets) == 1 else 0.4
            self._stroke(lines, ident.whisker_level, thick, alpha=alpha)
            self._stroke(proximal, ident.whisker_level, thick + 1, alpha=0.6 * alpha)

        # grooming paw over the snout
        paw = g["paw_occlusion"]
        if paw > 0.01:
            pc = np.array([238.0, 214.0 - 66.0 * paw + 5.0 * g["paw_stroke"]])
            wrist = pc + (-6.0, 10.0)
            arm = np.array([wrist + (-10, 0), wrist + (10, 2), (262.0, 320.0), (206.0, 320.0)])
            self._shaded_fill([self._ani(arm)], 0.9, 6 * px)
            self._fill(
                [self._ani(ellipse(pc, 19.0, 13.0, -35, 28))], min(ident.fur_level + 45, 225), soft=1.2 * px
            )
            toes = [
                self._ani(
                    ellipse(
                        pc + rot(np.array([[6.0 + 4 * k, -11.0 + 1.5 * k]]), (0, 0), -35)[0], 4.2, 3.4, 0, 12
                    )
                )
                for k in range(4)
            ]
            self._fill(toes, min(ident.fur_level + 65, 240), soft=0.6 * px)
        return self._img

    def render(self, au: Mapping[str, float]) -> np.ndarray:
        """One uint8 ``(H, W)`` frame for one row of AUs and camera values."""
        g = {**NEUTRAL_POSE, **au}
        canvas = self.render_canvas(g)
        m = self.margin
        cx, cy = self.W / 2.0, self.H / 2.0
        to_out = (
            affine(1.0, 0.0, cx + g["cam_dx"] * self.s0, cy + g["cam_dy"] * self.s0)
            @ affine(g["cam_zoom"], g["cam_rot"])
            @ affine(1.0, 0.0, -cx - m, -cy - m)
        )
        out = cv2.warpAffine(
            canvas, to_out[:2], (self.W, self.H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        out *= self._light * np.float32(g["gain"])
        out += np.float32(g["offset"])
        if self._blur_sigma > 0.3:
            out = cv2.GaussianBlur(out, (0, 0), self._blur_sigma)
        if self.noise_std > 0:
            k, dy, dx = self._rng.integers(0, 8), self._rng.integers(0, 16), self._rng.integers(0, 16)
            out += self._noise[k, dy : dy + self.H, dx : dx + self.W] * np.float32(self.noise_std)
        out += 0.5
        np.clip(out, 0.0, 255.0, out=out)
        return out.astype(np.uint8)


def render_pose(
    identity: Identity, au: Mapping[str, float], size: tuple[int, int] = (240, 320)
) -> np.ndarray:
    """Convenience: one clean frame (no camera nuisance) of ``identity`` with AUs ``au``."""
    return FaceRenderer(identity, size).render(au)


def expression_region(
    identity: Identity,
    emotion: str,
    size: tuple[int, int] = (240, 320),
    style=None,
    threshold: float = 8.0,
    whisker_phase: float = 0.0,
) -> np.ndarray:
    """Pixels that ``emotion``'s action-unit pattern moves: a boolean ``(H, W)`` mask.

    The face is rendered twice on a clean camera (no motion, noise or blur) in the same fixed pose,
    once neutral and once with ``emotion`` at full intensity (:func:`.dynamics.pose`, with the
    animal's ``style`` gains when given); pixels whose gray value differs by more than ``threshold``
    are the emotion's region. Used to check explanation maps against the ground truth.
    """
    from mouseemo.data.synthetic.dynamics import pose

    renderer = FaceRenderer(identity, size)
    still = {"whisker_phase": whisker_phase, "blink": 0.0, "sniff": 0.0, "lick": 0.0}
    base = renderer.render({**pose("neutral", 1.0, style), **still}).astype(np.float32)
    moved = renderer.render({**pose(emotion, 1.0, style), **still}).astype(np.float32)
    return np.abs(moved - base) > float(threshold)
