"""The docs/SPEC.md §4 loader: valid sets, and bad lines named by file:line or sample id."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from harmo_fast.data.jsonl import DataError, from_records, load_dataset, load_jsonl


def _write(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def img_dir(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "imgs" / "a.png")
    return tmp_path


def test_valid_file_resolves_images_relative_to_the_file(img_dir):
    p = _write(img_dir / "set.jsonl", [
        {"id": "s1", "prompt": "how many?", "images": ["imgs/a.png"], "answer": 3, "task_type": "counting"},
        "",
        {"id": "s2", "prompt": "pick", "answer": ["B", "b"], "task_type": "multiple_choice",
         "choices": ["A. x", "B. y"], "reference": "y"},
    ])  # fmt: skip
    ds = load_jsonl(p)
    assert len(ds) == 2 and ds.skipped == []
    a, b = ds.samples
    assert a.images == (str(img_dir / "imgs" / "a.png"),) and a.answer == "3" and a.task_type == "counting"
    assert b.images == () and b.answer == ["B", "b"] and b.choices == ["A. x", "B. y"] and b.reference == "y"


def test_malformed_line_names_file_and_line(tmp_path):
    p = _write(
        tmp_path / "set.jsonl",
        [{"id": "ok", "prompt": "p", "answer": "1", "task_type": "numeric"}, '{"id": "x", "prompt": '],
    )
    with pytest.raises(DataError, match=r"set\.jsonl:2: malformed JSON"):
        load_jsonl(p)


def test_missing_image_names_line_and_id(tmp_path):
    p = _write(
        tmp_path / "set.jsonl",
        [{"id": "img7", "prompt": "p", "images": ["nope.png"], "answer": "1", "task_type": "numeric"}],
    )
    with pytest.raises(DataError, match=r"set\.jsonl:1 \(id 'img7'\): image not found: 'nope.png'"):
        load_jsonl(p)


def test_unknown_task_type_lists_the_valid_ones(tmp_path):
    p = _write(tmp_path / "set.jsonl", [{"id": "q", "prompt": "p", "answer": "1", "task_type": "poetry"}])
    with pytest.raises(DataError, match=r"set\.jsonl:1 \(id 'q'\): unknown task_type 'poetry'.*math.*open_ended"):
        load_jsonl(p)


@pytest.mark.parametrize("record, what", [
    ({"prompt": "p", "task_type": "math"}, "missing required field 'answer'"),
    ({"answer": "1", "task_type": "math"}, "missing required field 'prompt'"),
    ({"prompt": "p", "answer": {"x": 1}, "task_type": "math"}, "answer must be a string"),
    ([1, 2], "must be a JSON object"),
    ({"prompt": "p", "answer": "1", "task_type": "math", "choices": "A"}, "choices must be a list"),
])  # fmt: skip
def test_bad_fields(tmp_path, record, what):
    p = _write(tmp_path / "set.jsonl", [record])
    with pytest.raises(DataError, match=what):
        load_jsonl(p)


def test_skip_bad_counts_and_keeps_the_good(tmp_path):
    p = _write(tmp_path / "set.jsonl", [
        {"id": "a", "prompt": "p", "answer": "1", "task_type": "numeric"},
        "not json",
        {"id": "b", "prompt": "p", "answer": "1", "task_type": "nope"},
        {"id": "c", "prompt": "p", "answer": "yes", "task_type": "yes_no"},
    ])  # fmt: skip
    ds = load_jsonl(p, skip_bad=True)
    assert [s.id for s in ds.samples] == ["a", "c"]
    assert len(ds.skipped) == 2 and ":2:" in ds.skipped[0] and "'b'" in ds.skipped[1]


def test_all_bad_or_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_jsonl(tmp_path / "none.jsonl")
    p = _write(tmp_path / "set.jsonl", ["{}"])
    with pytest.raises(DataError, match="no usable samples"):
        load_jsonl(p, skip_bad=True)


def test_records_with_in_memory_images_like_a_hf_dataset():
    rows = [
        {
            "id": 1,
            "prompt": "colour?",
            "images": [Image.new("RGB", (4, 4))],
            "answer": "A",
            "task_type": "multiple_choice",
            "extra_column": 5,
        }
    ]
    ds = from_records(rows, "hub/set:train")
    assert ds.samples[0].id == "1" and hasattr(ds.samples[0].images[0], "convert")
    with pytest.raises(DataError, match=r"hub/set:train\[0\].*unknown task_type"):
        from_records([{"prompt": "p", "answer": "1", "task_type": "x"}], "hub/set:train")


def test_hf_spec_without_datasets_package_is_a_clear_error():
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="datasets"):
            load_dataset("hf:someone/some_set:test")
    else:
        pytest.skip("datasets is installed; the loader would go to the network")
