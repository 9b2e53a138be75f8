"""Command-line habits, through the real `conveyor` command in subprocesses: `--version`, the
global options after the command, read-only commands that never create a workspace, and a
`--help` that loads no data, modelling or web library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from conveyor.data.sources import DEFAULT_CHUNK_ROWS
from conveyor.pipeline.agent import MIN_LEASE_TTL_S
from conveyor.pipeline.cycle import LEASE_TTL_S
from conveyor.registry.lifecycle import GC_MIN_AGE_S, KEEP_PRODUCTION
from conveyor.server.app import DEFAULT_HOST, DEFAULT_PORT
from conveyor.spec import parse_spec

from .conftest import CLI, SPEC, make_batch

ENV = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}


def conveyor(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", *args],
        cwd=cwd,
        env={**ENV, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a spec that is not ./conveyor.yaml and a workspace that is not
    ./.conveyor, holding one ingested batch: only the options can find them."""
    root = tmp_path_factory.mktemp("site")
    (root / "specs").mkdir()
    (root / "specs" / "toy.yaml").write_text(parse_spec(SPEC).to_yaml())
    make_batch(0).to_csv(root / "w0.csv", index=False)
    done = conveyor("ingest", "w0.csv", "--spec", "specs/toy.yaml", "--home", "ws", cwd=root)
    assert done.returncode == 0, done.stderr
    assert (root / "ws" / "conveyor.db").is_file() and not (root / ".conveyor").exists()
    return root


def test_version_prints_the_installed_distribution_version(tmp_path):
    done = conveyor("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"conveyor {version('conveyor-ml')}"
    assert list(tmp_path.iterdir()) == []


GLOBAL = ("--json", "--spec", "specs/toy.yaml", "--home", "ws")


@pytest.mark.parametrize(
    "command",
    [
        ["history"],
        ["models", "list"],
        ["models", "history"],
        ["quarantine", "list"],
        ["schema", "show"],
        ["data", "profile", "1"],
        ["data", "card", "1"],
        ["runs", "search"],
        ["alerts", "list"],
        ["hpo", "show"],
        ["retention", "--dry-run"],
        ["ingest", "w0.csv"],
    ],
    ids=" ".join,
)
def test_global_options_mean_the_same_before_and_after_the_command(site, command):
    before = conveyor(*GLOBAL, *command, cwd=site)
    after = conveyor(*command, *GLOBAL, cwd=site)
    assert before.returncode == 0, before.stderr
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert not (site / ".conveyor").exists()


def test_global_options_are_accepted_on_a_nested_group_too(site):
    on_group = conveyor(
        "models", "--json", "-f", "specs/toy.yaml", "list", "--home", "ws", cwd=site
    )
    assert on_group.returncode == 0, on_group.stderr
    assert json.loads(on_group.stdout) == []


def test_global_options_keep_their_precedence_after_the_command(site):
    # a flag beats CONVEYOR_HOME wherever it is written
    flag_wins = conveyor("history", "--home", "ws", "-f", "specs/toy.yaml", cwd=site,
                         env={"CONVEYOR_HOME": str(site / "elsewhere")})  # fmt: skip
    assert flag_wins.returncode == 0, flag_wins.stderr
    # given twice, the later one wins, as with any repeated option
    later = conveyor("--home", "nowhere", "history", "--home", "ws", "-f", "specs/toy.yaml",
                     cwd=site)  # fmt: skip
    assert later.returncode == 0, later.stderr
    earlier = conveyor("--home", "ws", "history", "--home", "nowhere", "-f", "specs/toy.yaml",
                       cwd=site)  # fmt: skip
    assert earlier.returncode == 1
    assert str(site / "nowhere") in earlier.stderr
    # without --json the output is the readable table, not JSON
    table = conveyor("quarantine", "list", "--home", "ws", "--spec", "specs/toy.yaml", cwd=site)
    assert table.returncode == 0 and "no quarantined batches" in table.stdout
    for name in ("elsewhere", "nowhere"):
        assert not (site / name).exists()


READ_ONLY = [
    ["history"],
    ["models", "list"],
    ["models", "show", "1"],
    ["models", "history"],
    ["models", "card", "1"],
    ["models", "report", "toy", "1", "--out", "report.html"],
    ["models", "gc", "--dry-run"],
    ["runs", "search"],
    ["runs", "compare", "run_a", "run_b"],
    ["alerts", "list"],
    ["quarantine", "list"],
    ["quarantine", "show", "ds_x"],
    ["schema", "show"],
    ["schema", "diff"],
    ["data", "card", "1"],
    ["data", "drift", "1", "2"],
    ["data", "profile", "1"],
    ["hpo", "show"],
    ["offline", "lookup", "k1"],
    ["monitor", "--report", "monitoring.html"],
    ["retention", "--dry-run"],
]

# commands that act on something an earlier command stored: on no workspace they cannot succeed
ON_STORED_STATE = [
    ["train"],
    ["hpo", "run", "--trials", "1"],
    ["gate", "2"],
    ["promote", "2", "--reason", "r"],
    ["rollback"],
    ["predict", "--batch", "conveyor.yaml", "--out", "out.csv"],
    ["offline", "build"],
    ["models", "request-approval", "2"],
    ["models", "approve", "2", "--reason", "r"],
    ["models", "reject", "2", "--reason", "r"],
    ["models", "archive", "2"],
    ["models", "restore", "2"],
    ["models", "delete", "2"],
    ["quarantine", "release", "ds_x"],
    ["alerts", "ack", "al_x"],
    ["schema", "accept", "--batch", "conveyor.yaml"],
]


@pytest.mark.parametrize("command", READ_ONLY + ON_STORED_STATE, ids=" ".join)
def test_reading_commands_never_create_a_workspace(cli: CLI, project_dir, command):
    done = cli(*command, "--home", "missing/ws", check=1)
    where = project_dir / "missing" / "ws"
    assert f"No Conveyor workspace at '{where}'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (project_dir / "missing").exists()
    assert sorted(p.name for p in project_dir.iterdir()) == ["conveyor.yaml"]


def test_read_only_command_names_the_default_workspace_and_leaves_an_empty_home_alone(
    cli: CLI, project_dir
):
    done = cli("history", check=1)
    assert f"No Conveyor workspace at '{project_dir / '.conveyor'}'" in done.stderr
    assert not (project_dir / ".conveyor").exists()
    (project_dir / "empty").mkdir()
    done = cli("models", "list", "--home", "empty", check=1)
    assert "conveyor.db' does not exist" in done.stderr
    assert list((project_dir / "empty").iterdir()) == []


# pydantic is not listed: Typer itself coerces option values with it
HEAVY = ("pandas", "numpy", "sklearn", "lightgbm", "pyarrow", "duckdb", "starlette", "fastapi",
         "sqlalchemy", "alembic", "matplotlib", "optuna", "scipy")  # fmt: skip

LOADED = """
import contextlib, io, sys
from conveyor.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        assert exc.code == 0, exc.code
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["models", "--help"],
        ["history", "--help"],
        ["data", "card", "--help"],
    ],
    ids=" ".join,
)
def test_help_and_version_load_no_heavy_library(tmp_path, args):
    done = subprocess.run([sys.executable, "-c", LOADED, *args], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) & set(HEAVY) == set()


def test_help_states_the_defaults_the_commands_use(tmp_path):
    """The commands resolve these defaults lazily; their help text must still tell the truth."""
    shown = {
        ("ingest",): f"default {DEFAULT_CHUNK_ROWS:,}",
        ("models", "gc"): f"default {GC_MIN_AGE_S:.0f} s",
        ("models", "delete"): f"default {KEEP_PRODUCTION}",
        ("server",): f"default {DEFAULT_HOST}",
        ("agent",): f"default {LEASE_TTL_S:g}, at least {MIN_LEASE_TTL_S:g}",
    }
    for command, text in shown.items():
        done = conveyor(*command, "--help", cwd=tmp_path)
        assert text in done.stdout, (command, done.stdout)
    assert f"default {DEFAULT_PORT}" in conveyor("server", "--help", cwd=tmp_path).stdout
