"""``dataspace data generate``: the synthetic lists of the matching demo and benchmarks."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dataspace.cli import app
from matching.identifiers import Kind, read_column

runner = CliRunner()


def test_two_lists_with_a_chosen_overlap(tmp_path: Path) -> None:
    bureau, bank = tmp_path / "bureau.csv", tmp_path / "bank.csv"
    result = runner.invoke(app, ["data", "generate", "enterprises", "--count", "1000", "--seed", "1", "--malformed", "0.01", "--output", str(bureau)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1000 enterprises written" in result.output
    result = runner.invoke(app, ["data", "generate", "enterprises", "--count", "500", "--seed", "2", "--overlap-with", str(bureau), "--overlap", "0.2", "--output", str(bank)])  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = read_column(bureau, "uscc", Kind.USCC)
    borrowers = read_column(bank, "uscc", Kind.USCC)
    assert len(listed.invalid) == 10
    assert len(set(listed.items) & set(borrowers.items)) == 100


def test_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    for name in ("a.csv", "b.csv"):
        result = runner.invoke(app, ["data", "generate", "residents", "--count", "50", "--seed", "9", "--output", str(tmp_path / name)])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_text(encoding="utf-8").startswith("id_number,name,mobile\n")


def test_an_overlap_without_a_list_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    result = runner.invoke(app, ["data", "generate", "residents", "--count", "5", "--seed", "1", "--overlap", "0.5", "--output", str(out)])  # fmt: skip
    assert result.exit_code == 2
    assert "needs --overlap-with" in result.output
    assert not out.exists()


def test_a_list_of_the_other_kind_is_refused(tmp_path: Path) -> None:
    firms = tmp_path / "firms.csv"
    runner.invoke(app, ["data", "generate", "enterprises", "--count", "5", "--seed", "1", "--output", str(firms)])  # fmt: skip
    result = runner.invoke(app, ["data", "generate", "residents", "--count", "5", "--seed", "1", "--overlap-with", str(firms), "--overlap", "0.2", "--output", str(tmp_path / "r.csv")])  # fmt: skip
    assert result.exit_code == 1
    assert "no column 'id_number'" in result.output


def test_an_unknown_dataset_and_a_bad_share_are_usage_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "x.csv")
    assert runner.invoke(app, ["data", "generate", "people", "--count", "5", "--seed", "1", "--output", out]).exit_code == 2  # fmt: skip
    assert runner.invoke(app, ["data", "generate", "residents", "--count", "5", "--seed", "1", "--malformed", "2", "--output", out]).exit_code == 2  # fmt: skip
    assert runner.invoke(app, ["data", "generate", "residents", "--count", "-1", "--seed", "1", "--output", out]).exit_code == 2  # fmt: skip


def test_an_unwritable_output_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "residents", "--count", "5", "--seed", "1", "--output", str(tmp_path / "no" / "such" / "dir.csv")])  # fmt: skip
    assert result.exit_code == 1
    assert "error:" in result.output
