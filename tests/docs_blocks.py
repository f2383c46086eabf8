"""The code blocks of a Markdown document, and a runner that executes them in order, as a reader would.

A block runs unless an HTML comment right above it says why not:

    <!-- docs: skip: starts a server that runs until Ctrl-C -->

Python blocks of one document share one interpreter (a later block sees what an earlier one
defined); shell blocks run with `bash -e` in the same working directory and environment, so a model
registered by a Python block is there for the CLI block after it. `text`, `yaml`, `json`, `toml` and
unlabelled blocks are shown, not run.

>>> blocks = extract(Path("README.md"))  # doctest: +SKIP
>>> [b.lang for b in blocks if b.runnable][:3]  # doctest: +SKIP
['bash', 'python', 'python']
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RUN = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash", "console": "bash"}
_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_DIRECTIVE = re.compile(r"<!--\s*docs:\s*(?P<what>[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, code, the line it starts on, and why it is skipped (if it is)."""

    path: Path
    lang: str
    code: str
    line: int
    skip: str | None = None

    @property
    def runnable(self) -> bool:
        """True for Python and shell blocks that no directive skips."""
        return self.lang in RUN and self.skip is None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def extract(path: Path) -> list[Block]:
    """Every fenced block of `path`, in order, with the `docs:` directive of the comment above it."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        skip = _skip_reason(text[: m.start()].rstrip("\n").splitlines())
        indent = len(m["indent"])
        code = "\n".join(line[indent:] for line in m["code"].splitlines())
        lang = m["info"].strip().split()[0].lower() if m["info"].strip() else ""
        blocks.append(Block(path, RUN.get(lang, lang), code, text.count("\n", 0, m.start()) + 1, skip))
    return blocks


def _skip_reason(before: list[str]) -> str | None:
    """The `docs: skip` reason among the HTML comments right above a fence (other markers may sit there)."""
    for line in reversed(before):
        if not line.lstrip().startswith("<!--"):
            return None
        directive = _DIRECTIVE.search(line)
        if directive and directive["what"].startswith("skip"):
            return directive["what"].partition(":")[2].strip() or "no reason given"
    return None


@dataclass
class BlockResult:
    block: Block
    ok: bool
    output: str


class DocRunner:
    """Runs a document's blocks in order in `workdir` with `env`; Python through one persistent process."""

    def __init__(self, workdir: Path, env: dict[str, str], timeout: float = 300.0) -> None:
        self.workdir, self.env, self.timeout = workdir, env, timeout
        self._python: subprocess.Popen[str] | None = None

    def run(self, block: Block) -> BlockResult:
        """Run one block; the result says whether it succeeded, with its output."""
        if block.lang == "bash":
            proc = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=self.workdir, env=self.env,
                capture_output=True, text=True, timeout=self.timeout, check=False,
            )  # fmt: skip
            return BlockResult(block, proc.returncode == 0, proc.stdout + proc.stderr)
        return self._run_python(block)

    def _run_python(self, block: Block) -> BlockResult:
        if self._python is None:
            self._python = subprocess.Popen(
                [sys.executable, "-u", "-c", _PY_SERVER], cwd=self.workdir, env=self.env, text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
        assert self._python.stdin and self._python.stdout
        self._python.stdin.write(json.dumps({"code": block.code, "where": block.where}) + "\n")
        self._python.stdin.flush()
        lines = []
        while True:
            line = self._python.stdout.readline()
            if not line:
                return BlockResult(block, False, "".join(lines) + "\n(the Python process died)")
            if line.startswith(_DONE):
                return BlockResult(block, line.strip() == f"{_DONE} ok", "".join(lines))
            lines.append(line)

    def close(self) -> None:
        """Stop the Python process."""
        if self._python is not None:
            self._python.kill()
            self._python.wait(10)
            self._python = None


_DONE = "@@docs-block-done@@"
# One interpreter, one namespace: each request is a block to exec; a marker line reports the outcome.
_PY_SERVER = f"""
import json, sys, traceback
ns = {{"__name__": "__main__"}}
for raw in sys.stdin:
    req = json.loads(raw)
    try:
        exec(compile(req["code"], req["where"], "exec"), ns)
        status = "ok"
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        status = "failed"
    sys.stdout.flush()
    print("{_DONE} " + status, flush=True)
"""


def docs_env(user_data: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment blocks run in: this venv first on PATH, no MAESTRALE_* setting (the embedded
    home is found as a reader's would be), and a user data directory of their own (`XDG_DATA_HOME`)."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRALE_")}
    env.update({"PATH": f"{venv_bin}:{env.get('PATH', '')}", "XDG_DATA_HOME": str(user_data)})
    env.update(extra or {})
    return env
