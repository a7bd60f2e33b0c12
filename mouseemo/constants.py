"""Shared vocabulary."""

#: The emotion vocabulary, in the fixed order used for class indices everywhere.
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "pleasure",
    "disgust",
    "malaise",
    "pain",
    "passive_fear",
    "active_fear",
)

#: Emotion name -> class index.
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

#: Video file extensions mouseemo looks for when given a folder.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mj2", ".wmv")
