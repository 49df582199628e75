"""`import runtime` must work without torch, torchvision, timm or edgeclf's training code."""

import subprocess
import sys

from conftest import REPO_ROOT, cli_env

BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'timm', 'train', 'export', 'bench'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=cli_env(), timeout=120)


def test_import_runtime_without_torch():
    r = run_blocked(
        "import runtime, sys\n"
        "from runtime import PreprocessConfig, load_image, preprocess\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm', 'onnxruntime'))\n"
        "print('loaded:', bad)\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "loaded: []"


def test_cli_help_without_torch():
    r = run_blocked("from edgeclf.cli import main\nimport sys\nsys.argv=['edgeclf','--help']\nmain()")
    assert "split" in r.stdout and "predict" in r.stdout, r.stderr


def test_training_command_without_torch_gives_a_one_line_hint(tmp_path):
    # As on a runtime-only install: torch and friends are simply not there.
    missing = """
import sys, importlib.abc
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'timm', 'rich'):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
"""
    code = (f"from edgeclf.cli import main\n"
            f"sys.exit(main(['evaluate', r'{tmp_path / 'best.pt'}', '--split', r'{tmp_path / 's.json'}']))")
    r = subprocess.run([sys.executable, "-c", missing + code], capture_output=True, text=True,
                       cwd=REPO_ROOT, env=cli_env(), timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "pip install 'edgeclf[train]'" in r.stderr
