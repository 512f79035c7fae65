"""The report's numbers equal results.json's, names from data stay text, errors are one line."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from robustcv.errors import UserError
from robustcv.report import render_report
from robustcv.report.loading import load_runs
from robustcv.report.markdown import md_unescape
from robustcv.report.queries import curve_series, is_natural
from robustcv.results import RunResults
from test_report_synthetic import EVIL_CLASS, EVIL_MODEL, make_run, rendered_two_runs


class Page(HTMLParser):
    """Tables (as header + rows of cell text), every start tag with its attributes, and all text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._classes: list[str] = []
        self.alerts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self.tables.append({"headers": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "div" and "alert" in attrs.get("class", ""):
            self._classes.append(attrs["class"])
            self.alerts.append(attrs["class"] + ":")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "div" and self._classes:
            self._classes.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._classes:
            self.alerts[-1] += data

    def table(self, *first: str) -> tuple[list[str], list[list[str]]]:
        for t in self.tables:
            if t["rows"] and tuple(t["rows"][0][: len(first)]) == first:
                return t["rows"][0], t["rows"][1:]
        raise AssertionError(f"no table starting with {first}")


def markdown_table(text: str, *first: str) -> tuple[list[str], list[list[str]]]:
    """The GitHub table whose header starts with ``first`` (cells unescaped)."""
    for block in re.split(r"\n\s*\n", text):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if len(lines) < 2:
            continue
        rows = [[md_unescape(c.strip()) for c in re.split(r"(?<!\\)\|", ln.strip())[1:-1]] for ln in lines]
        if tuple(rows[0][: len(first)]) == first:
            return rows[0], rows[2:]
    raise AssertionError(f"no markdown table starting with {first}")


def parse_eps(header: str) -> float:
    text = header.removeprefix("eps ")
    num, _, den = text.partition("/")
    return float(num) / float(den) if den else float(text)


@pytest.fixture(scope="module")
def report():
    run_dirs, paths = rendered_two_runs()
    return {"runs": run_dirs, "paths": paths, "html": paths["html"].read_text("utf-8"),
            "md": paths["md"].read_text("utf-8"),
            "results": {d.name: RunResults.load(d / "results.json") for d in run_dirs}}


def _curve_records(report):
    for run, results in report["results"].items():
        for r in results.records:
            if r.metric == "robust_accuracy" and not is_natural(r.attack):
                mode = "—" if r.defense == "none" else ("adaptive" if r.adaptive else "naive")
                yield (run, r.model, r.defense, r.attack, mode), r.eps, r.value


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_robust_accuracy_table_equals_records(report, fmt):
    first = ("Run", "Model", "Defense", "Attack", "Mode")
    headers, rows = Page(report["html"]).table(*first) if fmt == "html" else markdown_table(report["md"], *first)
    table = {(tuple(row[:5]), round(parse_eps(h), 9)): cell
             for row in rows for h, cell in zip(headers[5:], row[5:]) if cell != "—"}
    expected = {(key, round(eps, 9)): f"{value:.4f}" for key, eps, value in _curve_records(report)}
    assert table == expected
    assert {key[0][0] for key in table} == {"standard", "pgd-trained"}


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_summary_and_per_class_tables_equal_records(report, fmt):
    parse = Page(report["html"]).table if fmt == "html" else lambda *f: markdown_table(report["md"], *f)
    _, summary = parse("Run", "Model", "Defense", "Clean accuracy")
    headers, per_class = parse("Class")
    assert len(summary) == 4 and len(headers) == 5
    for (run, model, defense, clean, eps, robust, _), header in zip(summary, headers[1:]):
        records = report["results"][run].records
        assert clean == f"{_value(records, model, defense, 'clean_accuracy'):.4f}"
        assert robust == f"{_value(records, model, defense, 'robust_accuracy', 'worst-case', 0.1):.4f}"
        column = headers.index(header)
        for row in per_class:
            expected = _value(records, model, defense, "class_robust_accuracy", "worst-case", 0.1, row[0])
            assert row[column] == f"{expected:.4f}"


def _value(records, model, defense, metric, attack=None, eps=None, cls=None) -> float:
    (value,) = [r.value for r in records if r.model == model and r.defense == defense and r.metric == metric
                and (attack is None or r.attack == attack) and (eps is None or abs(r.eps - eps) < 1e-9)
                and r.cls == cls]
    return value


def test_names_from_data_are_text_never_markup(report):
    page = Page(report["html"])
    assert not [t for t, _ in page.tags if t == "script"]
    assert not [a for t, a in page.tags if "onerror" in a]
    assert all(a.get("src", "").startswith("data:image/png;base64,") for t, a in page.tags if t == "img")
    text = "".join(page.text)
    assert EVIL_CLASS in text and EVIL_MODEL in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report["html"]
    prose = re.sub(r"```.*?```", "", report["md"], flags=re.S)  # code blocks show text verbatim
    assert "<script>" not in prose and "<img src=x" not in prose


def test_html_is_self_contained(report):
    html = report["html"]
    assert "http://" not in html and "https://" not in html
    links = [a[k] for _, a in Page(html).tags for k in ("src", "href", "srcset", "action") if k in a]
    assert links and all(link.startswith(("data:image/png;base64,", "#")) for link in links)
    assert "<script" not in html.lower()
    assert "@media print" in html
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) >= 12


def test_markdown_images_are_files_beside_it(report):
    out = report["paths"]["md"].parent
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report["md"])
    assert len(links) >= 12
    for link in links:
        assert not link.startswith(("/", "http")) and (out / link).is_file()


def test_two_runs_share_the_robust_curves_plot(report):
    series = curve_series(load_runs(report["runs"]))
    labels = [s.label for s in series]
    assert any(label.startswith("standard / ") for label in labels)
    assert any(label.startswith("pgd-trained / ") for label in labels)
    assert len(labels) == len(set(labels)) == 14
    naive = [s for s in series if s.naive]
    assert naive and all("(naive)" in s.label for s in naive)


def test_failed_sanity_check_is_in_the_summary(report):
    page = Page(report["html"])
    (alert,) = [a for a in page.alerts if not a.startswith("alert ok")]
    assert "1 of 4 sanity checks FAILED" in alert and "pgd at least as strong as fgsm" in alert
    assert report["html"].index('class="alert"') < report["html"].index('id="robust-vs-eps"')
    assert "[!CAUTION]" in report["md"].split("## Robust accuracy vs eps")[0]


def test_refuses_to_overwrite_without_force(report):
    with pytest.raises(UserError, match="already exists"):
        render_report(report["runs"], report["paths"]["html"].parent)
    with pytest.raises(UserError, match="already exists"):
        render_report(report["runs"], report["paths"]["html"].parent, formats=("md",))


def test_force_rewrites_byte_identical_files(report):
    out = report["paths"]["html"].parent
    before = {p.name: p.read_bytes() for p in out.rglob("*.png")}
    paths = render_report(report["runs"], out, force=True)
    assert paths["html"].read_text("utf-8") == report["html"]
    assert {p.name: p.read_bytes() for p in out.rglob("*.png")} == before


def test_missing_model_json_and_image_are_reported_not_fatal(tmp_path):
    run_dir = make_run(tmp_path, "lonely", "m", adversarial=False, failing_check=False)
    results = RunResults.load(run_dir / "results.json")
    (run_dir / results.models[0]["model_json"]).unlink()
    (run_dir / results.gallery[0].clean_path).unlink()
    (run_dir / results.gallery[1].clean_path).write_text("not a png")
    paths = render_report([run_dir], tmp_path / "out", formats=("html",))
    assert set(paths) == {"html"}
    html = paths["html"].read_text("utf-8")
    assert "model.json not found" in html and html.count("image missing") == 2


def test_empty_run_says_not_measured(tmp_path):
    RunResults(run={"name": "empty"}).save(tmp_path / "run" / "results.json")
    paths = render_report([tmp_path / "run"], tmp_path / "out")
    text = paths["md"].read_text("utf-8")
    assert text.count("not measured") >= 6 and "## Reproducibility" in text


@pytest.mark.parametrize("content", [None, "{not json", '{"schema": "other/1"}', '{"schema": "robustcv.results/1"}'])
def test_bad_results_json_is_one_line_user_error(tmp_path, content):
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    with pytest.raises(UserError) as info:
        render_report([tmp_path], tmp_path / "out")
    assert "\n" not in str(info.value) and "results.json" in str(info.value)
    assert not (tmp_path / "out" / "report.html").exists()


def test_unknown_format_is_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown report format pdf"):
        render_report([tmp_path], tmp_path / "out", formats=("pdf",))


def test_headline_off_the_grid_falls_back_to_the_largest_eps(tmp_path):
    from robustcv.report.queries import headline

    run_dir = make_run(tmp_path, "off-grid", "m", adversarial=False, failing_check=False)
    results = RunResults.load(run_dir / "results.json")
    results.run["headline_eps"] = 0.15
    results.save(run_dir / "results.json")
    (run,) = load_runs([run_dir])
    h = headline(run, "m", "none")
    assert h.eps == 0.3
    assert h.robust == _value(results.records, "m", "none", "robust_accuracy", "worst-case", 0.3)


GRIDS = [[0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255], [0, 0.02, 0.05, 0.1, 0.2, 0.3],
         [0, 1 / 255, 2 / 255, 4 / 255, 8 / 255], [0, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255]]


@pytest.mark.parametrize("grid", GRIDS, ids=["to-16/255", "digits", "to-8/255", "seven-ticks"])
def test_eps_tick_labels_never_overprint(grid, tmp_path):
    """Drawn by matplotlib on the robust-curve figure: no two shown eps labels overlap, and the
    smallest, largest and every other tick that has room keep their label."""
    import matplotlib.pyplot as plt

    from robustcv.report import plots

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(grid, [1.0] * len(grid))
    plots._eps_ticks(ax, grid)
    fig.canvas.draw()
    shown = [label for label in ax.get_xticklabels() if label.get_text()]
    boxes = [label.get_window_extent() for label in shown]
    assert all(not a.padded(1).overlaps(b.padded(1)) for a, b in zip(boxes, boxes[1:]))  # a visible gap
    assert shown[0].get_text() == "0" and shown[-1].get_text() == plots.fmt_eps(grid[-1])
    assert len(shown) >= len(grid) - 2
    plt.close(fig)
