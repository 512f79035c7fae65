"""Faults in results.json: ``robustcv report`` validates types, required keys and ranges before it
writes anything. A bad file is one line naming the file and the field, exit 2, no report folder."""
from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

import pytest

from fault_helpers import assert_one_line, run_cli
from test_report_synthetic import make_run


def at(path: str, value: Any) -> Callable[[dict], None]:
    """Set the field at a dotted path (``records.3.value``) to ``value``."""
    def edit(data: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            data = data[part]
        data[last] = value
    return edit


def drop(path: str) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        for part in parents:
            data = data[part]
        del data[last]
    return edit


class Bad(NamedTuple):
    name: str
    edit: Callable[[dict], None]
    field: str


BAD = [
    Bad("accuracy as text", at("records.1.value", "0.9"), "records[1].value"),
    Bad("accuracy above 1", at("records.1.value", 7.5), "records[1].value"),
    Bad("negative accuracy", at("records.0.value", -0.1), "records[0].value"),
    Bad("nan accuracy", at("records.1.value", float("nan")), "records[1].value"),
    Bad("negative eps", at("records.1.eps", -0.1), "records[1].eps"),
    Bad("eps as text", at("records.1.eps", "8/255"), "records[1].eps"),
    Bad("sample count not whole", at("records.1.n", 60.5), "records[1].n"),
    Bad("missing metric", drop("records.1.metric"), "records[1].metric"),
    Bad("unknown record field", at("records.1.accuracy", 0.9), "records[1]"),
    Bad("interval outside [0, 1]", at("records.1.ci_high", 1.2), "records[1].ci_high"),
    Bad("adaptive as text", at("records.1.adaptive", "no"), "records[1].adaptive"),
    Bad("records not a list", at("records", {}), "records"),
    Bad("check passed as text", at("sanity_checks.0.passed", "yes"), "sanity_checks[0].passed"),
    Bad("run missing", drop("run"), "run: missing"),
    Bad("negative headline eps", at("run.headline_eps", -1), "run.headline_eps"),
    Bad("gallery path as number", at("gallery.0.clean_path", 3), "gallery[0].clean_path"),
    Bad("infinite eps on the grid", at("run.eps_grid", [0, 1e400]), "run.eps_grid"),
    Bad("nan eps on the grid", at("run.eps_grid", [0, float("nan")]), "run.eps_grid"),
    Bad("negative eps on the grid", at("run.eps_grid", [0, -0.1]), "run.eps_grid"),
    Bad("eps grid as text", at("run.eps_grid", "0,0.1"), "run.eps_grid"),
    Bad("infinite headline eps", at("run.headline_eps", 1e400), "run.headline_eps"),
    Bad("data info as text", at("run.data_info", "digits"), "run.data_info"),
    Bad("class names as text", at("run.data_info.classes", "0123456789"), "run.data_info.classes"),
    Bad("class name as number", at("run.data_info.classes", [0, 1]), "run.data_info.classes"),
    Bad("norm as number", at("run.norm", 2), "run.norm"),
    Bad("task as list", at("run.task", ["classification"]), "run.task"),
    Bad("seed as text", at("run.seed", "0"), "run.seed"),
    Bad("sample count negative", at("run.n", -4), "run.n"),
    Bad("run name as object", at("run.name", {"a": 1}), "run.name"),
    Bad("study as text", at("run.study", "seeds"), "run.study"),
    Bad("models not a list", at("models", "m"), "models"),
    Bad("absolute gallery path", at("gallery.0.clean_path", "/etc/secret.png"), "gallery[0].clean_path"),
    Bad("gallery path escaping the run", at("gallery.1.adversarial_path", "../../secret.png"),
        "gallery[1].adversarial_path"),
    Bad("absolute mask path", at("gallery.0.truth_mask_path", "/tmp/mask.png"), "gallery[0].truth_mask_path"),
    Bad("absolute model.json path", at("models.0.model_json", "/etc/model.json"), "models[0].model_json"),
    Bad("model_json naming another file", at("models.0.model_json", "../../notes/secret.json"),
        "models[0].model_json"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.name for c in BAD])
def test_bad_results_json_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = make_run(tmp_path / "runs", "bad", "m", adversarial=False, failing_check=False)
    path = run_dir / "results.json"
    data = json.loads(path.read_text("utf-8"))
    case.edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = run_cli(capsys, "report", run_dir, "--out", "report")
    assert_one_line(code, err, str(path), case.field)
    assert not (tmp_path / "report").exists() and not (tmp_path / "reports").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_a_valid_results_json_renders(tmp_path, monkeypatch, capsys):
    """Control: the synthetic file the cases above break is itself accepted."""
    monkeypatch.chdir(tmp_path)
    run_dir = make_run(tmp_path / "runs", "good", "m", adversarial=False, failing_check=False)
    code, _, err = run_cli(capsys, "report", run_dir, "--out", "report", "--format", "md")
    assert code == 0, err
    assert (tmp_path / "report" / "report.md").is_file()


@pytest.mark.parametrize("where", ["run", "records"])
def test_deeply_nested_results_json_is_one_line(where, tmp_path, monkeypatch, capsys):
    """A nesting deeper than the parser's recursion limit is a bad file, not a RecursionError."""
    monkeypatch.chdir(tmp_path)
    run_dir = make_run(tmp_path / "runs", "deep", "m", adversarial=False, failing_check=False)
    path = run_dir / "results.json"
    data = json.loads(path.read_text("utf-8"))
    data[where] = "NESTED"
    deep = "[" * 100_000 + "]" * 100_000
    path.write_text(json.dumps(data).replace('"NESTED"', deep), encoding="utf-8")
    code, _, err = run_cli(capsys, "report", run_dir, "--out", "report")
    assert_one_line(code, err, str(path), "nested")
    assert not (tmp_path / "report").exists()


def test_a_deeply_nested_model_json_is_one_line(tmp_path):
    from robustcv.checkpoint import read_metadata
    from robustcv.errors import UserError

    (tmp_path / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested too deeply"):
        read_metadata(tmp_path)
