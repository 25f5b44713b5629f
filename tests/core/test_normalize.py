"""Table tests of the pure normalization of the upstream's fetch answers.

The first four payloads are copied verbatim from the upstream's own page
(shared/upstream/fetch-endpoint.txt); the others follow the shapes that
shared/upstream/NOTES.md describes. Expectations follow shared/CONTRACT.md.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from relay.core.model import Observation
from relay.core.normalize import Malformed, map_status, normalize, parse_percentage
from support.payloads import (
    FAILED,
    FINISHED_FLUX,
    FINISHED_GRID,
    FLUX_TASK,
    PROCESSING,
    TASK,
    answer,
)
from tests.contract import RESULT_KEYS

try:
    import hypothesis
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - the table tests still run without it
    hypothesis = None  # type: ignore[assignment]

OTHER_TASK = "11111111-2222-3333-4444-555555555555"
STATUSES = {"queued", "running", "succeeded", "failed", "timed_out"}

# --- helpers ----------------------------------------------------------------------------------

VIDEO_1 = "https://cdn.example.com/v/1.mp4"
VIDEO_2 = "https://cdn.example.com/v/2.mp4"
DESCRIBE_LINES = [
    "1\ufe0f\u20e3 a red fox in the snow, watercolor --ar 3:2",
    "2\ufe0f\u20e3 a fox standing in a winter forest --ar 3:2",
    "3\ufe0f\u20e3 red fox, minimalist illustration --ar 3:2",
    "4\ufe0f\u20e3 a fox in the snow, japanese ink painting --ar 3:2",
]


def task(status: str, **fields: Any) -> dict[str, Any]:
    """A fetch answer about TASK with the given status and fields."""
    return answer(TASK, status, **fields)


def result(**fields: Any) -> dict[str, Any]:
    """The JSON of a result: all five keys, the given ones filled in."""
    return {"images": [], "grid_image": None, "videos": [], "content": [], "seed": None, **fields}


def seen(obs: Observation) -> dict[str, Any]:
    """An observation as plain data, its result as the contract's JSON."""
    return {
        "upstream_status": obs.upstream_status,
        "status": obs.status,
        "progress": obs.progress,
        "task_type": obs.task_type,
        "model": obs.model,
        "result": obs.result.as_json(),
        "error": obs.error,
    }


def expect(
    upstream_status: str,
    status: str,
    progress: int | None,
    *,
    task_type: str | None = "imagine",
    model: str | None = "midjourney",
    error: str | None = None,
    **result_fields: Any,
) -> dict[str, Any]:
    return {
        "upstream_status": upstream_status,
        "status": status,
        "progress": progress,
        "task_type": task_type,
        "model": model,
        "result": result(**result_fields),
        "error": error,
    }


# --- map_status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        pytest.param("staged", "queued", id="staged"),
        pytest.param("pending", "queued", id="pending"),
        pytest.param("starting", "running", id="starting"),
        pytest.param("processing", "running", id="processing"),
        pytest.param("finished", "succeeded", id="finished"),
        pytest.param("failed", "failed", id="failed"),
        pytest.param("FINISHED", "succeeded", id="upper-case"),
        pytest.param(" Pending\n", "queued", id="padded-mixed-case"),
        pytest.param("retry", "running", id="unknown-retry"),
        pytest.param("retrying", "running", id="unknown-retrying"),
        pytest.param("RETRYING ", "running", id="unknown-RETRYING-padded"),
        pytest.param("queued", "running", id="unknown-queued-is-not-an-upstream-word"),
        pytest.param("cancelled", "running", id="unknown-cancelled"),
    ],
)
def test_map_status(word: str, expected: str) -> None:
    assert map_status(word) == expected


# --- parse_percentage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("45", 45, id="str"),
        pytest.param("45%", 45, id="str-percent"),
        pytest.param(" 45 ", 45, id="str-padded"),
        pytest.param(" 45 % ", 45, id="str-padded-percent"),
        pytest.param("0", 0, id="str-zero"),
        pytest.param("100", 100, id="str-hundred"),
        pytest.param("45.9", 45, id="str-fraction"),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param("%", None, id="percent-sign-only"),
        pytest.param(None, None, id="none"),
        pytest.param(45, 45, id="int"),
        pytest.param(45.9, 45, id="float"),
        pytest.param(0, 0, id="int-zero"),
        pytest.param("abc", None, id="not-a-number"),
        pytest.param("45 of 100", None, id="words"),
        pytest.param("150", 100, id="str-above-clamps"),
        pytest.param(150, 100, id="int-above-clamps"),
        pytest.param("-3", 0, id="str-negative-clamps"),
        pytest.param(-3, 0, id="int-negative-clamps"),
        pytest.param("nan", None, id="str-nan"),
        pytest.param(math.nan, None, id="float-nan"),
        pytest.param("inf", None, id="str-inf"),
        pytest.param(math.inf, None, id="float-inf"),
        pytest.param(True, None, id="true"),
        pytest.param(False, None, id="false"),
        pytest.param([45], None, id="list"),
        pytest.param({"value": 45}, None, id="object"),
        # JSON decoders (json, msgspec) turn a long integer literal into a Python int.
        pytest.param(10**400, 100, id="huge-int-clamps"),
        pytest.param(-(10**400), 0, id="huge-negative-int-clamps"),
    ],
)
def test_parse_percentage(value: Any, expected: int | None) -> None:
    got = parse_percentage(value)
    assert got == expected
    assert got is None or type(got) is int


# --- normalize: well-formed answers -----------------------------------------------------------

GRID_IMAGES = FINISHED_GRID["image_urls"]
FAILED_WITHOUT_REASON = object()  # the error must be some non-empty text

NORMALIZE_CASES = [
    # verbatim examples of the upstream's page
    pytest.param(PROCESSING, expect("processing", "running", 45), id="doc-processing"),
    pytest.param(
        FINISHED_GRID,
        expect(
            "finished",
            "succeeded",
            100,
            images=GRID_IMAGES,
            grid_image="https://cdn.midjourney.com/abc123/grid_0.png",
        ),
        id="doc-finished-grid",
    ),
    pytest.param(
        FINISHED_FLUX,
        expect(
            "finished",
            "succeeded",
            100,
            model="flux-pro",
            images=["https://images.journeyapi.com/flux/abc123.png"],
        ),
        id="doc-finished-flux-single-image",
    ),
    pytest.param(
        FAILED, expect("failed", "failed", None, error="Content policy violation"), id="doc-failed"
    ),
    # result shapes
    pytest.param(
        task(
            "finished", task_type="imagine-video", percentage="100", video_urls=[VIDEO_1, VIDEO_2]
        ),
        expect("finished", "succeeded", 100, task_type="imagine-video", videos=[VIDEO_1, VIDEO_2]),
        id="video",
    ),
    pytest.param(
        task("finished", task_type="describe", percentage="100", content=DESCRIBE_LINES),
        expect("finished", "succeeded", 100, task_type="describe", content=DESCRIBE_LINES),
        id="describe",
    ),
    pytest.param(
        task(
            "finished",
            task_type="shorten",
            percentage="100",
            content=["red fox, snow", "fox, winter forest"],
            full_content="Here are the shortened prompts:\n1. red fox, snow\n2. fox, winter forest",
        ),
        expect(
            "finished",
            "succeeded",
            100,
            task_type="shorten",
            content=["red fox, snow", "fox, winter forest"],
        ),
        id="shorten-full-content-not-a-key",
    ),
    pytest.param(
        task("finished", task_type="seed", percentage="100", seed="1234567890"),
        expect("finished", "succeeded", 100, task_type="seed", seed="1234567890"),
        id="seed-string",
    ),
    pytest.param(
        task("finished", task_type="seed", seed="0042"),
        expect("finished", "succeeded", 100, task_type="seed", seed="0042"),
        id="seed-string-leading-zeros-kept",
    ),
    pytest.param(
        task("finished", task_type="seed", seed="18446744073709551615"),
        expect("finished", "succeeded", 100, task_type="seed", seed="18446744073709551615"),
        id="seed-string-beyond-64-bits",
    ),
    pytest.param(
        task("finished", task_type="seed", seed=1234567890),
        expect("finished", "succeeded", 100, task_type="seed", seed="1234567890"),
        id="seed-int-becomes-string",
    ),
    pytest.param(
        task("finished", task_type="upscale#1", image_url="https://cdn.example.com/u.png"),
        expect(
            "finished",
            "succeeded",
            100,
            task_type="upscale#1",
            images=["https://cdn.example.com/u.png"],
        ),
        id="open-ended-task-type",
    ),
    pytest.param(
        task("finished", image_urls=[], image_url="https://cdn.example.com/one.png"),
        expect("finished", "succeeded", 100, images=["https://cdn.example.com/one.png"]),
        id="empty-image-urls-falls-back-to-image-url",
    ),
    # lifecycle words
    pytest.param(task("staged"), expect("staged", "queued", None), id="staged"),
    pytest.param(task("pending", percentage="0"), expect("pending", "queued", 0), id="pending"),
    pytest.param(
        task("starting", percentage=""), expect("starting", "running", None), id="starting"
    ),
    pytest.param(
        task("processing", percentage="45%"),
        expect("processing", "running", 45),
        id="processing-percent-sign",
    ),
    pytest.param(
        task("processing", percentage=" 45 "),
        expect("processing", "running", 45),
        id="processing-padded",
    ),
    pytest.param(
        task("processing", percentage=45.9),
        expect("processing", "running", 45),
        id="processing-float",
    ),
    pytest.param(
        task("processing"), expect("processing", "running", None), id="processing-no-percentage"
    ),
    pytest.param(
        task("processing", percentage=None),
        expect("processing", "running", None),
        id="processing-null-percentage",
    ),
    pytest.param(
        task("processing", percentage="abc"),
        expect("processing", "running", None),
        id="processing-unreadable-percentage",
    ),
    pytest.param(
        task("processing", percentage="150"),
        expect("processing", "running", 100),
        id="processing-percentage-clamped-high",
    ),
    pytest.param(
        task("processing", percentage="-3"),
        expect("processing", "running", 0),
        id="processing-percentage-clamped-low",
    ),
    pytest.param(
        task("processing", percentage=True),
        expect("processing", "running", None),
        id="processing-boolean-percentage",
    ),
    pytest.param(
        task("processing", percentage=10**400),
        expect("processing", "running", 100),
        id="processing-huge-int-percentage",
    ),
    pytest.param(
        task("Processing"), expect("Processing", "running", None), id="mixed-case-word-kept-raw"
    ),
    # unknown words: still running, the raw word kept (its case kept, padding trimmed)
    pytest.param(
        task("retry", percentage="10"), expect("retry", "running", 10), id="unknown-retry"
    ),
    pytest.param(task("retrying"), expect("retrying", "running", None), id="unknown-retrying"),
    pytest.param(
        task("RETRYING "), expect("RETRYING", "running", None), id="unknown-RETRYING-padded"
    ),
    # finished: always 100, the first fetch may already be final
    pytest.param(
        {
            "task_id": FLUX_TASK,
            "model": "flux-schnell",
            "status": "finished",
            "image_url": "https://cdn.example.com/sync.png",
        },
        expect(
            "finished",
            "succeeded",
            100,
            task_type=None,
            model="flux-schnell",
            images=["https://cdn.example.com/sync.png"],
        ),
        id="synchronous-finished-first-fetch-no-percentage",
    ),
    pytest.param(
        task("finished", percentage="45", image_url="https://cdn.example.com/a.png"),
        expect("finished", "succeeded", 100, images=["https://cdn.example.com/a.png"]),
        id="finished-with-stale-percentage-is-100",
    ),
    pytest.param(
        task("finished", percentage="abc"),
        expect("finished", "succeeded", 100),
        id="finished-unreadable-percentage-is-100",
    ),
    # failures
    pytest.param(
        task("failed"),
        expect("failed", "failed", None, error=FAILED_WITHOUT_REASON),
        id="failed-without-error",
    ),
    pytest.param(
        task("failed", error=""),
        expect("failed", "failed", None, error=FAILED_WITHOUT_REASON),
        id="failed-empty-error",
    ),
    pytest.param(
        task("failed", error="   "),
        expect("failed", "failed", None, error=FAILED_WITHOUT_REASON),
        id="failed-blank-error",
    ),
    pytest.param(
        task("failed", error=None),
        expect("failed", "failed", None, error=FAILED_WITHOUT_REASON),
        id="failed-null-error",
    ),
    pytest.param(
        task("failed", error=500),
        expect("failed", "failed", None, error=FAILED_WITHOUT_REASON),
        id="failed-numeric-error",
    ),
    pytest.param(
        task("failed", error={"code": "E42"}),
        expect("failed", "failed", None, error=FAILED_WITHOUT_REASON),
        id="failed-object-error-without-message",
    ),
    pytest.param(
        task("failed", error={"message": "Banned prompt", "code": "E42"}),
        expect("failed", "failed", None, error="Banned prompt"),
        id="nested-error-message",
    ),
    pytest.param(
        task("failed", error={"msg": "Invalid image"}),
        expect("failed", "failed", None, error="Invalid image"),
        id="nested-error-msg",
    ),
    pytest.param(
        task("failed", error={"detail": "Queue full"}),
        expect("failed", "failed", None, error="Queue full"),
        id="nested-error-detail",
    ),
    pytest.param(
        task("failed", percentage="60", error="Timed out upstream"),
        expect("failed", "failed", 60, error="Timed out upstream"),
        id="failed-keeps-last-percentage",
    ),
    pytest.param(
        task("processing", percentage="45", error="transient hiccup"),
        expect("processing", "running", 45),
        id="error-ignored-unless-failed",
    ),
    # leniency
    pytest.param(
        {
            **FINISHED_GRID,
            "prompt": "a fox",
            "credits": 2,
            "meta": {"a": [1, 2]},
            "webhook_url": None,
            "image_urls_v2": ["https://x"],
            "full_content": "x",
        },
        expect(
            "finished",
            "succeeded",
            100,
            images=GRID_IMAGES,
            grid_image="https://cdn.midjourney.com/abc123/grid_0.png",
        ),
        id="unknown-extra-fields-ignored",
    ),
    pytest.param(
        task(
            "finished",
            image_urls=[
                None,
                42,
                True,
                {"url": "https://x"},
                ["https://y"],
                "",
                "  ",
                "https://cdn.example.com/ok.png",
            ],
            video_urls=[3.5, None, VIDEO_1],
            content=[None, 7, {"text": "x"}, "a red fox"],
        ),
        expect(
            "finished",
            "succeeded",
            100,
            images=["https://cdn.example.com/ok.png"],
            videos=[VIDEO_1],
            content=["a red fox"],
        ),
        id="non-string-list-items-skipped",
    ),
    pytest.param(
        task(
            "finished",
            image_urls="https://cdn.example.com/lone.png",
            original_image_url=5,
            video_urls={"0": VIDEO_1},
            content=None,
            seed=None,
        ),
        expect("finished", "succeeded", 100, images=["https://cdn.example.com/lone.png"]),
        id="wrongly-typed-result-fields",
    ),
    pytest.param(
        task("finished", seed=True),
        expect("finished", "succeeded", 100),
        id="boolean-seed-dropped",
    ),
    pytest.param(
        {"status": "processing", "task_type": 7, "model": ["midjourney"], "percentage": "5"},
        expect("processing", "running", 5, task_type=None, model=None),
        id="non-string-task-type-and-model",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), NORMALIZE_CASES)
def test_normalize(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(payload)
    obs = normalize(payload, task_id=TASK if payload.get("task_id") == TASK else None)

    assert isinstance(obs, Observation)
    got = seen(obs)
    assert set(got["result"]) == RESULT_KEYS
    if expected["error"] is FAILED_WITHOUT_REASON:
        assert isinstance(got["error"], str)
        assert got["error"].strip()
        got["error"] = expected["error"]
    assert got == expected
    assert payload == before  # the answer is read, never changed


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(PROCESSING, id="processing"),
        pytest.param(FINISHED_GRID, id="grid"),
        pytest.param(FINISHED_FLUX, id="single-image"),
        pytest.param(FAILED, id="failed"),
        pytest.param(
            task("finished", task_type="shorten", content=["a"], full_content="a b"), id="shorten"
        ),
        pytest.param(task("finished", task_type="seed", seed=99), id="seed"),
    ],
)
def test_result_json_has_exactly_five_keys(payload: dict[str, Any]) -> None:
    as_json = normalize(payload).result.as_json()
    assert set(as_json) == RESULT_KEYS
    assert "full_content" not in as_json
    assert as_json["seed"] is None or isinstance(as_json["seed"], str)


@pytest.mark.parametrize(
    ("answered_id", "asked_id"),
    [
        pytest.param(TASK, TASK, id="same"),
        pytest.param(TASK.upper(), TASK, id="answer-upper-case"),
        pytest.param(None, TASK, id="answer-without-task-id"),
        pytest.param(OTHER_TASK, None, id="nothing-asked"),
    ],
)
def test_task_id_accepted(answered_id: str | None, asked_id: str | None) -> None:
    payload = {**PROCESSING, "task_id": answered_id}
    if answered_id is None:
        del payload["task_id"]
    assert normalize(payload, task_id=asked_id).status == "running"


# --- normalize: malformed answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "task_id"),
    [
        pytest.param([PROCESSING], None, id="list"),
        pytest.param([], None, id="empty-list"),
        pytest.param("processing", None, id="string"),
        pytest.param('{"status": "processing"}', None, id="json-text-not-decoded"),
        pytest.param(None, None, id="none"),
        pytest.param(45, None, id="int"),
        pytest.param(4.5, None, id="float"),
        pytest.param(True, None, id="bool"),
        pytest.param({}, None, id="empty-object-like-a-401"),
        pytest.param(
            {"errors": [{"msg": "task_id is not a valid uuid"}]}, None, id="errors-400-shape"
        ),
        pytest.param(
            {k: v for k, v in PROCESSING.items() if k != "status"}, None, id="missing-status"
        ),
        pytest.param({**PROCESSING, "status": ""}, None, id="empty-status"),
        pytest.param({**PROCESSING, "status": "  \t\n"}, None, id="blank-status"),
        pytest.param({**PROCESSING, "status": None}, None, id="null-status"),
        pytest.param({**PROCESSING, "status": 3}, None, id="numeric-status"),
        pytest.param({**PROCESSING, "status": True}, None, id="boolean-status"),
        pytest.param({**PROCESSING, "status": ["finished"]}, None, id="list-status"),
        pytest.param({**PROCESSING, "status": {"word": "finished"}}, None, id="object-status"),
        pytest.param({**FINISHED_FLUX}, TASK, id="another-tasks-answer"),
        pytest.param(
            {**FINISHED_GRID, "task_id": OTHER_TASK}, TASK, id="another-tasks-finished-answer"
        ),
    ],
)
def test_normalize_malformed(payload: Any, task_id: str | None) -> None:
    with pytest.raises(Malformed):
        normalize(payload, task_id=task_id)


def test_malformed_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"\S"):
        normalize(["not", "an", "object"])


# --- property: anything JSON gives an Observation or Malformed, nothing else ------------------


def check_any_answer(payload: Any, task_id: str | None) -> None:
    try:
        obs = normalize(payload, task_id=task_id)
    except Malformed:
        return
    assert isinstance(obs, Observation)
    assert obs.status in STATUSES - {"timed_out"}
    assert isinstance(obs.upstream_status, str)
    assert obs.upstream_status.strip()
    assert obs.progress is None or (type(obs.progress) is int and 0 <= obs.progress <= 100)
    if obs.status == "succeeded":
        assert obs.progress == 100
    if obs.status == "failed":
        assert isinstance(obs.error, str)
        assert obs.error.strip()
    as_json = obs.result.as_json()
    assert set(as_json) == RESULT_KEYS
    for key in ("images", "videos", "content"):
        assert all(isinstance(item, str) and item.strip() for item in as_json[key])
    for key in ("grid_image", "seed"):
        assert as_json[key] is None or isinstance(as_json[key], str)


if hypothesis is not None:
    JSON_SCALARS = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text()
        # integer literals far beyond a float, as json and msgspec decode them
        | st.sampled_from([10**400, -(10**400), 2**64, -(2**63) - 1])
    )
    JSON_VALUES = st.recursive(
        JSON_SCALARS,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=8), children, max_size=5)
        ),
        max_leaves=20,
    )
    WORDS = st.sampled_from(
        [
            "staged",
            "pending",
            "starting",
            "processing",
            "finished",
            "failed",
            "retry",
            "retrying",
            "RETRYING ",
            " Finished",
            "",
            "  ",
        ]
    )
    PERCENTAGES = st.sampled_from(
        ["45", "45%", " 45 ", "", "abc", "150", "-3", "nan", "inf", "1e400", True, 45.9]
    )
    URLS = st.sampled_from(["https://cdn.example.com/a.png", "", "  ", "x"])
    IDS = st.sampled_from([TASK, TASK.upper(), OTHER_TASK, ""])
    ANSWERS = st.fixed_dictionaries(
        {},
        optional={
            "task_id": IDS | JSON_VALUES,
            "task_type": st.text(max_size=12) | JSON_VALUES,
            "model": st.text(max_size=12) | JSON_VALUES,
            "status": WORDS | st.text() | JSON_VALUES,
            "percentage": PERCENTAGES | JSON_VALUES,
            "original_image_url": URLS | JSON_VALUES,
            "image_urls": st.lists(URLS | JSON_VALUES, max_size=4) | JSON_VALUES,
            "image_url": URLS | JSON_VALUES,
            "video_urls": st.lists(URLS | JSON_VALUES, max_size=4) | JSON_VALUES,
            "content": st.lists(st.text(max_size=12) | JSON_VALUES, max_size=4) | JSON_VALUES,
            "full_content": JSON_VALUES,
            "seed": st.text(max_size=12) | JSON_VALUES,
            "error": st.text(max_size=12) | JSON_VALUES,
            "extra": JSON_VALUES,
        },
    )

    @hypothesis.settings(max_examples=500, deadline=None, database=None)
    @hypothesis.given(payload=ANSWERS | JSON_VALUES, task_id=st.none() | IDS)
    @hypothesis.example(payload={"status": "processing", "percentage": 10**400}, task_id=None)
    @hypothesis.example(payload={"status": "finished", "seed": 2**64}, task_id=None)
    def test_any_json_gives_observation_or_malformed(payload: Any, task_id: str | None) -> None:
        check_any_answer(payload, task_id)

else:  # pragma: no cover

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_any_json_gives_observation_or_malformed() -> None:
        pass
