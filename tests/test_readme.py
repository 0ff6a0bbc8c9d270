"""The README stays true: its results table is the generated one, its environment-variable
table lists every variable the code reads, it stays short, its links and the docs' links
resolve, and the test command CI runs is the README's."""
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _load_script():
    path = ROOT / "scripts" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results_table = _load_script()


# --- (a) the results table -------------------------------------------------------------

def test_readme_results_table_is_what_the_script_prints():
    block = results_table.block_of(README.read_text())
    assert block == results_table.table(), \
        "README results table is stale: run python scripts/results_table.py --write README.md"
    assert len(block.splitlines()) > 2, "the results table has no rows"


def test_the_table_follows_the_results_files(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(ROOT / "bench" / "results" / "all-cpu-2026-11-24.json", results)
    before = results_table.table(str(results))
    assert "| mask_iou_dense | 6.18 ms, 11.1x vs pycocotools_encode_iou" in before
    report = json.loads((results / "all-cpu-2026-11-24.json").read_text())
    report["cases"]["mask_iou_dense"]["rows"][0]["speedup_vs_pycocotools_encode_iou"] = 42.0
    report["environment"]["commit"] = "abcdef0123-dirty"
    (results / "all-cpu-2026-11-24.json").write_text(json.dumps(report))
    after = results_table.table(str(results))
    assert "42x vs pycocotools_encode_iou" in after and "`abcdef0-dirty`" in after
    assert after != before


def test_write_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"intro\n{results_table.START}\nold\n{results_table.END}\noutro\n")
    assert results_table.main(["--write", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{results_table.END}\noutro\n")
    assert "old" not in text and results_table.block_of(text) == results_table.table()
    page.write_text("no markers here\n")
    assert results_table.main(["--write", str(page)]) == 2
    with pytest.raises(ValueError, match="markers"):
        results_table.block_of("no markers")


def test_ablation_rows_show_mean_and_std_after_rl_per_split(tmp_path):
    from gro_fast.train.ablation import AblationConfig
    from gro_fast.train.ablation_report import mean_std, write_reports

    acc = {"grpo": {0: (0.10, 0.50), 1: (0.20, 0.60)}, "gro": {0: (0.30, 0.55), 1: (0.50, 0.65)}}
    results = {arm: {seed: _record(hard, easy) for seed, (hard, easy) in seeds.items()}
               for arm, seeds in acc.items()}
    out = tmp_path / "results" / "ablation"
    out.mkdir(parents=True)
    write_reports(str(out), AblationConfig(arms=["grpo", "gro"], seeds=2, token_budget=900,
                                           eval_size=16), results, {})
    rows = [line for line in results_table.table(str(tmp_path / "results")).splitlines()
            if "ablation `" in line]
    assert len(rows) == 2 and "`grpo` (2 seeds, 900 tokens, 16 prompts per split)" in rows[0]
    hard = mean_std([0.30, 0.50])
    assert f"hard {hard[0]:.3f} ± {hard[1]:.3f}" in rows[1]
    assert "easy 0.600 ± 0.071" in rows[1] and "hard 0.150 ± 0.071" in rows[0]


def _record(hard: float, easy: float) -> dict:
    after = {"hard/acc_at_0.5": hard, "easy/acc_at_0.5": easy, "hard/mean_iou": hard / 2}
    return {"before": {"hard/acc_at_0.5": 0.0, "easy/acc_at_0.5": 0.0}, "after": after,
            "curve": [{"tokens": 0, "hard/acc_at_0.5": 0.0, "easy/acc_at_0.5": 0.0},
                      {"tokens": 900, **after}],
            "steps": [{"zero_variance_frac": 0.5, "all_fail_frac": 0.25}],
            "num_steps": 3, "generated_tokens": 900, "wall_s": 1.0}


# --- (b) every environment variable read is in the README's table -------------------------

PY_READ = re.compile(
    r"""(?:os\.environ\.(?:get|setdefault|pop)\(|os\.environ\[|getenv\()\s*(["']?)(\w+)\1""")
PY_IN = re.compile(r"""(["']?)(\w+)\1\s+(?:not\s+)?in\s+os\.environ\b""")
SH_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-")


def _python_reads(path: Path) -> set[str]:
    text = path.read_text()
    names = set()
    for match in [*PY_READ.finditer(text), *PY_IN.finditer(text)]:
        quoted, name = match.group(1), match.group(2)
        if not quoted:  # a module constant holding the name, e.g. ENV = "GRO_FAST_FAULT"
            constant = re.search(rf"^{name}\s*=\s*[\"'](\w+)[\"']", text, re.M)
            assert constant, f"{path}: cannot resolve the environment variable named by {name}"
            name = constant.group(1)
        names.add(name)
    return names


def environment_variables_read() -> dict[str, set[str]]:
    """{variable: files that read it} over the package, setup.py, bench/ and scripts/."""
    files = [*ROOT.glob("gro_fast/**/*.py"), ROOT / "setup.py", *ROOT.glob("bench/**/*.py"),
             *ROOT.glob("scripts/*.py"), ROOT / "tests" / "fuzz" / "run.py"]
    found: dict[str, set[str]] = {}
    for path in files:
        for name in _python_reads(path):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    for path in ROOT.glob("scripts/*.sh"):
        for name in SH_READ.findall(path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def readme_environment_variables(text: str) -> set[str]:
    section = text.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split("|")[1])}


def test_every_environment_variable_read_is_in_the_readme_table():
    found = environment_variables_read()
    # The scan itself works: it finds variables read directly, through a constant, by scripts.
    assert {"GRO_FAST_KERNELS", "GRO_FAST_VALUE_CHECKS", "GRO_FAST_FAULT", "WORLD_SIZE",
            "GRO_FAST_BUILD_CUDA", "GRO_FAST_WHEELS", "GRO_FAST_CPU_TORCH"} <= set(found)
    listed = readme_environment_variables(README.read_text())
    missing = {name: sorted(files) for name, files in found.items() if name not in listed}
    assert not missing, f"read by the code but not in the README's table: {missing}"


def test_a_variable_missing_from_the_table_is_caught():
    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| `GRO_FAST_KERNELS`"))
    assert "GRO_FAST_KERNELS" not in readme_environment_variables(text.replace(row + "\n", ""))


def test_each_variable_has_one_row():
    section = README.read_text().split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    firsts = [name for line in section.splitlines() if line.startswith("| `")
              for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])]
    assert len(firsts) == len(set(firsts)), "a variable appears in two rows"


# --- (c) length, links, the test command ----------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    slugs = set()
    for line in re.sub(r"```.*?```", "", path.read_text(), flags=re.S).splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip().lower()
            slugs.add(re.sub(r"[^\w\- ]", "", heading).replace(" ", "-"))
    return slugs


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    return broken


def test_readme_is_short_and_points_to_every_docs_page():
    text = README.read_text()
    lines = text.count("\n")
    assert lines < 260, f"README.md has {lines} lines; move the long form to docs/"
    linked = {target.partition("#")[0] for target in LINK.findall(_prose(text))}
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages and not pages - linked, f"docs pages the README never links: {pages - linked}"


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert not broken_links(page), f"{page.relative_to(ROOT)}: {broken_links(page)}"


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "b.md").write_text("# Real heading\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#real-heading) [gone](c.md) [bad](b.md#nope) [web](https://x.org)\n")
    assert broken_links(page) == ["c.md (no such file)", "b.md#nope (no such heading)"]


def test_ci_runs_the_readme_test_command():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith("#")]
    command = ci[-1]
    quick_start = README.read_text().split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    assert command == "scripts/test.sh"
    assert re.search(rf"^{re.escape(command)}\b", quick_start, re.M), \
        f"CI runs {command!r}, which the README's quick start does not show"
