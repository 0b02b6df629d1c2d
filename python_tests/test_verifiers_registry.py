"""The verify() entry point and the verifier registry: validation, options, golds, imports."""

import subprocess
import sys

import pytest

from harmo_fast.rewards.types import TASK_TYPES, Verdict
from harmo_fast.rewards.verifiers import Verifier, get_verifier, register, registered_task_types
from harmo_fast.rewards.verify import verify


def test_every_task_type_has_a_verifier():
    assert set(TASK_TYPES) <= set(registered_task_types())


def test_unknown_task_type_lists_valid_ones():
    with pytest.raises(ValueError, match=r"task_type must be one of .*math.*multiple_choice"):
        verify("1", "1", "poetry")


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="choicez"):
        verify("A", "A", "multiple_choice", choicez=["x"])
    with pytest.raises(ValueError, match="percent"):
        verify("yes", "yes", "yes_no", percent="value")  # not an option of yes/no


@pytest.mark.parametrize("gold", [[], None, 5, ["1", 2]])
def test_bad_gold(gold):
    with pytest.raises(ValueError, match="gold"):
        verify("1", gold, "math")


def test_bad_completion():
    with pytest.raises(TypeError, match="completion"):
        verify(None, "1", "math")  # type: ignore[arg-type]


def test_verdict_fields():
    v = verify(r"\boxed{4}", "4", "math")
    assert v == Verdict(1.0, True, "ok", "4", True, "rule", None, "", "boxed")


def test_register_a_custom_verifier():
    @register("_test_always")
    class Always(Verifier):
        bare_answer_max_chars = 100
        parent_safe = True

        def compare(self, answer, gold, options):
            return "match", ""

    assert isinstance(get_verifier("_test_always"), Always)
    assert verify("anything", "x", "_test_always").correct


def test_importing_rewards_does_not_import_torch():
    code = (
        "import sys, harmo_fast.rewards.pool; from harmo_fast.rewards import verify; "
        "verify('1', '1', 'math'); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_bad_option_values_are_named():
    with pytest.raises(ValueError, match="rel_tol"):
        verify("1", "1", "numeric", rel_tol="big")
    with pytest.raises(ValueError, match="ordered"):
        verify("1", "1", "math", ordered="yes")
    with pytest.raises(ValueError, match="choices"):
        verify("A", "A", "multiple_choice", choices="ABCD")
    with pytest.raises(ValueError, match="timeout_s"):
        verify("1", "1", "math", timeout_s=0)


def test_verifier_failure_becomes_error_verdict():
    @register("_test_broken")
    class Broken(Verifier):
        bare_answer_max_chars = 100

        def compare(self, answer, gold, options):
            raise ZeroDivisionError("bug")

    v = verify("x", "y", "_test_broken")
    assert v.reason == "error" and not v.confident and "ZeroDivisionError" in v.detail
