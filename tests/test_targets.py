"""A run that misses a target its spec sets (slip rate, style mix) fails with exit 1, after
writing its files; rounding and a few removed items are not a miss."""

from __future__ import annotations

import re
import tomllib

import pytest

from persona import pipeline
from persona.errors import TargetMissed
from persona.providers.offline import OfflineProvider
from persona.spec import builtin_path, parse_spec
from persona.workspace import Workspace


def report(n, slips, target_slip=15.0, styles=None):
    styles = styles or {"a": (n // 2, 50.0), "b": (n - n // 2, 50.0)}
    return {"count": n,
            "slips": {"count": slips, "percent": 100 * slips / n, "target_percent": target_slip},
            "style_mix": {k: {"count": c, "percent": 100 * c / n, "target_percent": t}
                          for k, (c, t) in styles.items()}}


def test_rounding_and_a_few_removed_items_are_not_a_miss():
    assert pipeline.missed_targets(report(10, 2)) == []          # round(1.5) = 2 of 10
    assert pipeline.missed_targets(report(1000, 150 + 21)) == []  # within 1 + 2 %
    assert pipeline.missed_targets(report(1, 0)) == []


def test_missed_targets_are_named_worst_first():
    missed = pipeline.missed_targets(report(1000, 0, styles={"a": (560, 50.0), "b": (440, 50.0)}))
    assert missed[0] == "slips 0.00 % (0 of 1000), the spec sets 15.00 % (style.slip_rate)"
    assert missed[1].startswith("style 'a' 56.00 % (560 of 1000), the spec sets 50.00 %")
    assert len(missed) == 3


def test_slip_rules_that_never_match_fail_the_run(tmp_path):
    text = builtin_path("babis").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^pattern = .*$', 'pattern = "ZZZ-never"', text)
    spec = parse_spec(tomllib.loads(text))
    ws = Workspace(tmp_path, spec.id)
    result, _ = pipeline.run(spec, ws, OfflineProvider(), pipeline.RunOptions(count=60))
    assert result["slips"]["count"] == 0 and (ws.final / "train.jsonl").exists()
    with pytest.raises(TargetMissed) as e:
        pipeline.check_targets(result, ws)
    assert e.value.exit_code == 1
    assert "missed slips 0.00 %" in str(e.value) and "(style.slip_rate)" in str(e.value)
    assert "'no slip rule matches this answer'" in str(e.value)
