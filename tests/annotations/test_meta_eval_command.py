"""`manage.py meta_eval`: two CSV files in, the meta-evaluation out; bad input answered with file:line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command


def _files(tmp_path: Path, *, n: int = 30, system: bool = True) -> tuple[Path, Path]:
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 1, n)
    ratings = ["unit,rater,value"]
    for u in range(n):
        for r in range(3):
            ratings.append(f"d{u},r{r},{int(np.clip(np.rint(3 + truth[u] + rng.normal(0, 0.7)), 1, 5))}")
    scores = ["unit,metric,score" + (",system,group" if system else "")]
    for u in range(n):
        for metric, noise in (("sentence", 0.3), ("word", 1.5)):
            extra = f",llm{u % 3},img{u // 3}" if system else ""
            scores.append(f"d{u},{metric},{truth[u] + rng.normal(0, noise):.4f}{extra}")
    r, s = tmp_path / "ratings.csv", tmp_path / "scores.csv"
    r.write_text("\n".join(ratings) + "\n")
    s.write_text("\n".join(scores) + "\n")
    return r, s


def test_it_prints_the_documented_json_keys(tmp_path, capsys) -> None:
    r, s = _files(tmp_path)
    call_command("meta_eval", "--ratings", str(r), "--scores", str(s), "--bootstrap", "200", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["items"] == 30
    assert set(out["reliability"]) >= {"split_half_sb", "icc2k"}
    assert out["ceiling"] == pytest.approx(out["reliability"]["split_half_sb"] ** 0.5)
    for name in ("sentence", "word"):
        m = out["metrics"][name]
        for method in ("spearman", "kendall", "pearson"):
            assert set(m[method]) >= {"r", "ci"} and len(m[method]["ci"]) == 2
        assert m["disattenuated"]["spearman"] == pytest.approx(m["spearman"]["r"] / out["ceiling"])
    assert {"a", "b", "delta", "ci", "p", "p_holm"} <= set(out["comparisons"][0])
    assert out["system_level"]["systems"] == ["llm0", "llm1", "llm2"]
    assert out["params"]["seed"] == 20250101


def test_it_prints_a_headline_and_tables_as_text(tmp_path, capsys) -> None:
    r, s = _files(tmp_path, system=False)
    call_command("meta_eval", "--ratings", str(r), "--scores", str(s), "--bootstrap", "100", "--seed", "5")
    out = capsys.readouterr().out
    assert out.startswith("sentence: ρ = ")
    assert " than word (Δρ = " in out and "Holm p" in out
    assert "seed 5" in out and "system level" not in out and "within group" not in out


@pytest.mark.parametrize(("which", "text", "message"), [
    ("scores", "unit,metric\nd0,word\n", "scores.csv: missing column(s) score"),
    ("scores", "unit,metric,score\nd0,word,0.1\nnope,word,0.2\n", "scores.csv:3: unit 'nope' has no rating"),
    ("scores", "unit,metric,score\nd0,word,0.1\nd1,word,0.2\nd0,bert,0.3\n",
     "scores.csv:4: metric 'bert' has only one score"),
    ("scores", "unit,metric,score\nd0,word,0.1\nd1,word,high\n", "scores.csv:3: score 'high' is not a number"),
    ("scores", "unit,metric,score\nd0,word,0.1\nd0,word,0.2\n",
     "scores.csv:3: metric 'word' scores unit 'd0' twice (first on line 2)"),
    ("scores", "", "scores.csv: the file is empty"),
    ("ratings", "unit,value\nd0,3\n", "ratings.csv: missing column(s) rater"),
    ("ratings", "unit,rater,value\nd0,a,3\nd0,a,4\n", "ratings.csv:3: rater 'a' rated unit 'd0' twice"),
    ("ratings", "unit,rater,value\nd0,a,3\nd0,b,good\n", "ratings.csv:3: value 'good' is not a number"),
    # A quoted cell spanning two lines: the bad row after it is still named by its physical line.
    ("ratings", 'unit,rater,value\nd0,"a\nb",3\nd0,c,good\n', "ratings.csv:4: value 'good' is not a number"),
])
def test_it_rejects_bad_input_with_file_and_line(tmp_path, which: str, text: str, message: str) -> None:
    r, s = _files(tmp_path)
    (r if which == "ratings" else s).write_text(text)
    with pytest.raises(CommandError) as excinfo:
        call_command("meta_eval", "--ratings", str(r), "--scores", str(s), "--bootstrap", "50")
    assert message in str(excinfo.value)


def test_it_exits_non_zero_on_bad_input(tmp_path) -> None:
    r, s = _files(tmp_path, n=12)
    s.write_text("unit,metric,score\nd0,word,x\n")
    done = subprocess.run([sys.executable, "manage.py", "meta_eval", "--ratings", str(r), "--scores", str(s)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "scores.csv:2: score 'x' is not a number" in done.stderr
