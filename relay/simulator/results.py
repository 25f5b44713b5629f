"""The result fields a finished task carries, per shape, as fetch-endpoint.txt documents them.

Values derive from the task id alone so that two fetches of one task agree and a
test can predict them.
"""

from __future__ import annotations

import hashlib
from typing import Any

_DESCRIBE_PROMPTS = (
    "a lighthouse on a basalt cliff at dusk, volumetric fog, cinematic lighting --ar 3:2",
    "an old lighthouse above a stormy sea, oil painting, muted palette --ar 3:2",
    "coastal landscape with a white tower and crashing waves, 35mm film photo --ar 3:2",
    "minimalist illustration of a lighthouse beam cutting through mist --ar 3:2",
)
_SHORT_PROMPTS = (
    "lighthouse, basalt cliff, dusk, fog",
    "lighthouse, stormy sea, oil painting",
    "white tower, waves, film photo",
)
_FULL_PROMPT = (
    "a weathered lighthouse standing on a basalt cliff at dusk, thick volumetric fog rolling in "
    "from the sea, cinematic lighting, ultra detailed, shot on 35mm film"
)


def _token(task_id: str) -> str:
    return hashlib.sha256(task_id.encode()).hexdigest()[:12]


def result_fields(task_id: str, shape: str, model: str) -> dict[str, Any]:
    """The shape-specific fields of a finished answer; an unknown shape carries none."""
    token = _token(task_id)
    if shape == "grid":
        base = f"https://cdn.midjourney.com/{token}"
        return {
            "original_image_url": f"{base}/grid_0.png",
            "image_urls": [f"{base}/0_{i}.png" for i in range(4)],
        }
    if shape == "single":
        host = "cdn.midjourney.com" if model == "midjourney" else "images.journeyapi.com"
        return {"image_url": f"https://{host}/{model}/{token}.png"}
    if shape == "video":
        count = 4 if model == "midjourney" else 1
        return {
            "video_urls": [f"https://videos.journeyapi.com/{token}/{i}.mp4" for i in range(count)]
        }
    if shape == "describe":
        return {"content": list(_DESCRIBE_PROMPTS)}
    if shape == "shorten":
        return {"content": list(_SHORT_PROMPTS), "full_content": _FULL_PROMPT}
    if shape == "seed":
        # Midjourney seeds are 32-bit unsigned integers, sent as a string of digits.
        return {"seed": str(int(token, 16) % 4_294_967_296)}
    return {}
