"""Face detection for the People heuristic: OpenCV's Haar cascade where the cv2 build has it (4.x), else
scikit-image's LBP frontal-face cascade (both ship their models). Runs on a copy with a 320-pixel shorter
side; faces smaller than 1/8 of that side are ignored."""

from __future__ import annotations

import cv2
import numpy as np

ANALYSIS_SIDE = 320


def available_backend(kind: str) -> str:
    """The backend `kind` resolves to: opencv, skimage or none."""
    has_opencv = hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data")
    if kind == "auto":
        if has_opencv:
            return "opencv"
        try:
            import skimage.feature  # noqa: F401
        except ImportError:
            return "none"
        return "skimage"
    if kind == "opencv" and not has_opencv:
        raise ValueError("s6.face_detector=opencv: this OpenCV build has no CascadeClassifier (OpenCV 5 moved "
                         "it out); use skimage or auto")
    if kind not in ("opencv", "skimage", "none"):
        raise ValueError(f"s6.face_detector must be auto, opencv, skimage or none, got {kind!r}")
    return kind


class FaceDetector:
    def __init__(self, kind: str = "auto"):
        self.backend = available_backend(kind)
        self._detector = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_detector": None}

    def face_areas(self, rgb: np.ndarray) -> list[float]:
        """Area of each detected face as a share of the image area, largest first."""
        if self.backend == "none":
            return []
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scale = ANALYSIS_SIDE / min(grey.shape)
        grey = cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        boxes = self._opencv(grey) if self.backend == "opencv" else self._skimage(grey)
        total = float(grey.shape[0] * grey.shape[1])
        return sorted((w * h / total for w, h in boxes), reverse=True)

    def _opencv(self, grey: np.ndarray) -> list[tuple[int, int]]:
        if self._detector is None:
            self._detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        minimum = ANALYSIS_SIDE // 8
        found = self._detector.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=8, minSize=(minimum, minimum))
        return [(int(w), int(h)) for _, _, w, h in found]

    def _skimage(self, grey: np.ndarray) -> list[tuple[int, int]]:
        if self._detector is None:
            from skimage.data import lbp_frontal_face_cascade_filename
            from skimage.feature import Cascade

            self._detector = Cascade(lbp_frontal_face_cascade_filename())
        minimum = ANALYSIS_SIDE // 8
        found = self._detector.detect_multi_scale(grey, scale_factor=1.2, step_ratio=1, min_size=(minimum, minimum),
                                                  max_size=grey.shape, min_neighbor_number=8)
        return [(int(f["width"]), int(f["height"])) for f in found]
