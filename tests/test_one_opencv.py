"""One OpenCV in the environment: the peers' opencv-python must not sit beside camloc's headless build."""

from importlib import metadata


def test_cv2_is_one_distribution():
    dists = {d.metadata["Name"].lower() for d in metadata.distributions()}
    builds = sorted(n for n in dists if n.startswith("opencv-") and n.endswith(("python", "python-headless")))
    assert builds == ["opencv-python-headless"], builds
