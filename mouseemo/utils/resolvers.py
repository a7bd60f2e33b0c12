"""OmegaConf resolvers used by the configs (registered once, before composition)."""

from omegaconf import OmegaConf


def input_channels(reference=None, clip_length=1) -> int:
    """Channels a classifier backbone takes: the frame, its difference from the session reference
    (``model.reference`` set), and one motion channel per earlier clip frame (``MotionStack``)."""
    with_reference = reference is not None and str(reference).lower() not in ("none", "null", "")
    return 1 + int(with_reference) + max(int(clip_length) - 1, 0)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("len"):
        OmegaConf.register_new_resolver("len", lambda x: len(x))
    if not OmegaConf.has_resolver("input_channels"):
        OmegaConf.register_new_resolver("input_channels", input_channels)
