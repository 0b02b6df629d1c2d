"""The Bradley-Terry preference head: it learns to prefer helpful over dismissive answers from
synthetic pairs and ranks held-out pairs (unseen prompts and responses) well above chance;
save/load round trip; the `harmo rm train` command; JSONL validation."""

import argparse
import json
import random

import pytest
import torch

from harmo_fast.cli import rm as rm_cli
from harmo_fast.rewards.preference_head import (
    PreferenceHead,
    PreferenceHeadRM,
    PreferencePair,
    read_pairs,
    train_preference_head,
)

# topic -> (subjects asked about, answers on the topic). Index 2 of subjects and 3 of answers are
# held out of training.
TOPICS = {
    "cooking": (
        ["tomato sauce", "baking bread", "grilling fish"],
        [
            "Simmer the ingredients on low heat and season with salt and herbs.",
            "Knead the dough, let it rise for an hour, then bake it in a hot oven.",
            "Use fresh ingredients and taste the dish as you cook it.",
            "Preheat the pan with a little oil before adding the food.",
        ],
    ),
    "astronomy": (
        ["black holes", "the planet Mars", "distant galaxies"],
        [
            "Telescopes collect faint light from stars millions of light years away.",
            "Gravity there is so strong that not even light can escape.",
            "Astronomers measure the redshift of the light to estimate distance.",
            "It orbits the Sun and can be seen in the night sky with a telescope.",
        ],
    ),
    "football": (
        ["the offside rule", "penalty kicks", "the World Cup"],
        [
            "The striker scored a goal after a pass from the midfielder.",
            "A player is offside when nearer to the goal line than the last defender.",
            "The referee awarded a free kick after the foul on the pitch.",
            "The team with the most goals after ninety minutes wins the match.",
        ],
    ),
    "programming": (
        ["Python lists", "recursion", "unit testing"],
        [
            "Write a function, call it with sample inputs and check the returned value.",
            "The compiler reports a syntax error on the line with the missing bracket.",
            "Store the items in an array and loop over them with an index.",
            "A function that calls itself needs a base case to stop.",
        ],
    ),
    "gardening": (
        ["growing roses", "composting", "watering tomatoes"],
        [
            "Plant the seeds in moist soil and keep them in a sunny spot.",
            "Prune dead branches in early spring so the plant grows stronger.",
            "Mix kitchen scraps with leaves so they decompose into rich soil.",
            "Water the plants at their roots in the morning, not on the leaves.",
        ],
    ),
    "finance": (
        ["index funds", "compound interest", "paying off debt"],
        [
            "Diversify your investments to reduce the risk of losing money.",
            "Interest earned on the balance is added and then earns interest itself.",
            "Pay the loan with the highest interest rate first.",
            "Keep an emergency savings account with several months of expenses.",
        ],
    ),
    "medicine": (
        ["the flu vaccine", "high blood pressure", "a sprained ankle"],
        [
            "Rest, ice and elevate the injured joint to reduce swelling.",
            "A doctor may prescribe medication and recommend less salt in the diet.",
            "Vaccination trains the immune system to recognise the virus.",
            "See a physician if the symptoms get worse or last more than a week.",
        ],
    ),
    "music": (
        ["playing guitar", "reading sheet music", "writing a song"],
        [
            "Practice the chords slowly and strum in a steady rhythm.",
            "Each note on the staff shows the pitch and how long to hold it.",
            "Start with a melody and a chorus, then add verses and lyrics.",
            "Tune the instrument before you play so the notes sound right.",
        ],
    ),
}
TEMPLATES = ["Can you tell me about {}?", "I need advice on {}.", "Explain {} to a beginner."]
DISMISSIVE = [
    "I don't know, figure it out yourself.",
    "Why would you even ask that? Stop wasting my time.",
    "No idea. Not my problem.",
    "That is a stupid question.",
    "Whatever, it does not matter anyway.",
    "I refuse to answer this.",
    "Go look it up somewhere else.",
    "Who cares about that?",
    "Ask someone else, I am busy.",
    "This question is boring and I won't help.",
    "Nope, not going to explain that.",
    "Don't bother me with this.",
]


def _pairs(held_out: bool, rng: random.Random) -> list[PreferencePair]:
    """Chosen: an on-topic helpful answer; rejected: a dismissive one. The held-out set uses other
    subjects, templates, answers and dismissals than the training set."""
    pairs = []
    for subjects, answers in TOPICS.values():
        subs, good = (subjects[2:], answers[3:]) if held_out else (subjects[:2], answers[:3])
        templates, bad = (TEMPLATES, DISMISSIVE[9:]) if held_out else (TEMPLATES[:2], DISMISSIVE[:9])
        for subject in subs:
            for template in templates:
                pairs.append(PreferencePair(template.format(subject), rng.choice(good), rng.choice(bad)))
    return pairs


@pytest.fixture(scope="module")
def trained():
    rng = random.Random(0)
    train, test = _pairs(False, rng), _pairs(True, rng)
    rm = train_preference_head(train, epochs=30, lr=3e-3, hidden=32, seed=0)
    return rm, train, test


def _accuracy(rm, pairs):
    n = len(pairs)  # one call: every distinct text is embedded once
    scores = rm.score([p.chosen for p in pairs] + [p.rejected for p in pairs], [p.prompt for p in pairs] * 2)
    return sum(c > r for c, r in zip(scores[:n], scores[n:])) / n


def test_ranks_held_out_pairs_better_than_chance(trained):
    rm, train, test = trained
    assert len(train) == 32 and len(test) == 24
    assert not {t for p in test for t in (p.prompt, p.chosen, p.rejected)} & {
        t for p in train for t in (p.prompt, p.chosen, p.rejected)
    }
    assert rm.config["train"]["accuracy"] >= 0.95
    # 24 held-out pairs: P(>= 19 correct | coin flips) < 0.4%
    assert _accuracy(rm, test) >= 19 / 24


def test_an_untrained_head_does_not_pass_that_bar(trained):
    rm, _, test = trained
    torch.manual_seed(1)
    untrained = PreferenceHeadRM(PreferenceHead(rm.config["embedding_dim"], rm.config["hidden"]), rm.config)
    assert _accuracy(untrained, test) < 19 / 24


def test_scores_in_unit_interval_and_empty_answer_zero(trained):
    rm, _, test = trained
    scores = rm.score([test[0].chosen, "", "  "], [test[0].prompt] * 3)
    assert 0.0 < scores[0] < 1.0 and scores[1:] == [0.0, 0.0]
    with pytest.raises(ValueError, match="prompts"):
        rm.score(["a"], [])


def test_save_load_round_trip(trained, tmp_path):
    rm, _, test = trained
    rm.save(tmp_path / "head")
    assert {p.name for p in (tmp_path / "head").iterdir()} == {"head.safetensors", "config.json"}
    loaded = PreferenceHeadRM.load(tmp_path / "head")
    answers, prompts = [p.chosen for p in test[:5]], [p.prompt for p in test[:5]]
    assert loaded.score(answers, prompts) == pytest.approx(rm.score(answers, prompts), abs=1e-6)
    assert loaded.config == rm.config


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="harmo rm train"):
        PreferenceHeadRM.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    (tmp_path / "head.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="format"):
        PreferenceHeadRM.load(tmp_path)


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("{not json", r":2: not valid JSON"),
        ('["a", "b"]', r":2: expected a JSON object"),
        ({"prompt": "p", "chosen": "c"}, r":2: missing key 'rejected'"),
        ({"prompt": "p", "chosen": 3, "rejected": "r"}, r":2: 'chosen' must be a string"),
        ({"prompt": "p", "chosen": " ", "rejected": "r"}, r":2: 'chosen' and 'rejected' must be non-empty"),
    ],
)
def test_jsonl_validation_names_the_line(tmp_path, bad, match):
    path = _write(tmp_path / "p.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}, bad])
    with pytest.raises(ValueError, match=match):
        read_pairs(path)


def test_empty_pairs_file(tmp_path):
    with pytest.raises(ValueError, match="no preference pairs"):
        read_pairs(_write(tmp_path / "e.jsonl", ["", "  "]))


def harmo_main(argv):
    """`harmo` with only the `rm` sub-command registered (the others are not under test here)."""
    parser = argparse.ArgumentParser(prog="harmo")
    rm_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_train_then_load(tmp_path, capsys):
    rows = [
        {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "id": i}
        for i, p in enumerate(_pairs(False, random.Random(3))[:6])
    ]
    pairs = _write(tmp_path / "prefs.jsonl", rows)
    assert (
        harmo_main(
            ["rm", "train", "--pairs", str(pairs), "--out", str(tmp_path / "rm"), "--epochs", "5", "--hidden", "16"]
        )
        == 0
    )
    assert "trained on 6 pairs" in capsys.readouterr().out
    rm = PreferenceHeadRM.load(tmp_path / "rm")
    assert rm.config["hidden"] == 16 and rm.config["train"]["epochs"] == 5
    bad = _write(tmp_path / "bad.jsonl", ["{}"])
    assert harmo_main(["rm", "train", "--pairs", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "bad.jsonl:1: missing key 'prompt'" in capsys.readouterr().err
