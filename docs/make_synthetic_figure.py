"""Render ``docs/img/synthetic_faces.png``: neutral and each emotion at full intensity for two animals.

Run from the repository root: ``python docs/make_synthetic_figure.py``. The animals are ``m01`` and
``m02`` of ``mouseemo synth --seed 0``, drawn on a clean camera (no camera motion, noise or blur).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mouseemo.constants import EMOTIONS  # noqa: E402
from mouseemo.data.synthetic.dynamics import pose  # noqa: E402
from mouseemo.data.synthetic.face import FaceRenderer  # noqa: E402
from mouseemo.data.synthetic.writer import animal_identity  # noqa: E402

OUT = Path(__file__).resolve().parent / "img" / "synthetic_faces.png"


def main(seed: int = 0, num_animals: int = 2, size: tuple[int, int] = (240, 320)) -> Path:
    fig, axes = plt.subplots(
        num_animals, len(EMOTIONS), figsize=(2.0 * len(EMOTIONS), 1.65 * num_animals + 0.3)
    )
    for a in range(num_animals):
        identity, style = animal_identity(seed, a)
        renderer = FaceRenderer(identity, size)
        for j, emotion in enumerate(EMOTIONS):
            row = pose(emotion, 1.0, style)
            row["whisker_phase"] = 0.5 * math.pi  # mid-stroke, so whisking amplitude shows
            ax = axes[a, j]
            ax.imshow(renderer.render(row), cmap="gray", vmin=0, vmax=255, interpolation="antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            if a == 0:
                ax.set_title(emotion.replace("_", " "), fontsize=10)
            if j == 0:
                ax.set_ylabel(identity.name, fontsize=10)
    fig.suptitle("Synthetic faces: neutral and each emotion at full intensity", fontsize=11)
    fig.tight_layout(pad=0.3)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    plt.close(fig)
    return OUT


if __name__ == "__main__":
    path = main()
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
