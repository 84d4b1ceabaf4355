"""`radpipe synth …` through click's CliRunner: help, errors, determinism, corpus."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from radpipe.synth import StudyTruth
from radpipe.synth.cli import synth
from radpipe.synth.corpus import plan_corpus
from tests.synth_fixtures import small_ct, small_mr  # noqa: F401  (session fixtures)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.dcm")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(synth, ["--help"])
    assert result.exit_code == 0
    for cmd in ("mr-glioma", "mr-metastasis", "ct-hemorrhage", "mr-normal", "ct-normal", "corpus"):
        assert cmd in result.output
    sub = CliRunner().invoke(synth, ["mr-glioma", "--help"])
    assert "--vendor" in sub.output and "--accession" in sub.output


def test_bad_input_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(synth, ["mr-glioma", "--out", str(tmp_path / "x"), "--vendor", "hitachi"])
    assert r.exit_code == 2 and "hitachi" in r.output and "Traceback" not in r.output
    r = runner.invoke(synth, ["mr-glioma"])
    assert r.exit_code == 2 and "--out" in r.output
    r = runner.invoke(synth, ["corpus", "--app", "knee", "--n", "2", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "knee" in r.output
    r = runner.invoke(synth, ["ct-normal", "--out", str(tmp_path), "--accession", "x" * 20])
    assert r.exit_code == 2 and "16" in r.output
    f = tmp_path / "file"
    f.write_text("")
    r = runner.invoke(synth, ["ct-normal", "--out", str(f)])
    assert (r.exit_code == 2 and r.exception is None) or isinstance(r.exception, SystemExit)


def test_cli_writes_the_same_study_for_the_same_seed(
    tmp_path: Path,
    small_mr: tuple[Path, StudyTruth],  # noqa: F811
) -> None:
    ref_dir, ref = small_mr
    out = tmp_path / "study"
    args = ["mr-glioma", "--out", str(out), "--seed", "1", "--vendor", "ge", "--small"]
    r = CliRunner().invoke(synth, args)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and ref.accession in r.output
    assert _digest(out) == _digest(ref_dir)
    assert StudyTruth.load(out) == ref
    again = CliRunner().invoke(synth, args)
    assert again.exit_code == 1 and "--force" in again.output


def test_corpus_is_parallel_deterministic_and_resumable(
    tmp_path: Path,
    small_ct: tuple[Path, StudyTruth],  # noqa: F811
) -> None:
    out = tmp_path / "corpus"
    args = ["corpus", "--app", "hemorrhage", "--n", "2", "--out", str(out), "--small"]
    r = CliRunner().invoke(synth, [*args, "--workers", "2"])
    assert r.exit_code == 0, r.output
    index = json.loads((out / "corpus.json").read_text())
    assert [c["seed"] for c in index["cases"]] == [0, 1]
    # case 0 of a hemorrhage corpus is ct-hemorrhage, seed 0, GE: byte-identical to the fixture
    ref_dir, _ = small_ct
    assert _digest(out / "case_00000") == _digest(ref_dir)
    r2 = CliRunner().invoke(synth, [*args, "--workers", "1"])
    assert r2.exit_code == 0
    assert json.loads((out / "corpus.json").read_text()) == index


def test_plan_corpus_rotates_vendors_and_mixes_normals(tmp_path: Path) -> None:
    cases = plan_corpus("hemorrhage", 10, tmp_path, seed=100)
    assert [c.seed for c in cases] == list(range(100, 110))
    assert {c.vendor for c in cases} == {"ge", "siemens", "philips", "canon"}
    assert sum(c.kind == "ct-normal" for c in cases) == 2
    assert plan_corpus("hemorrhage", 10, tmp_path, seed=100) == cases
