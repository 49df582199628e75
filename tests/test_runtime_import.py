"""`import edgeclf.runtime` must work without torch, torchvision, timm or edgeclf's training code,
and no file of the application's (runtime.py, train.py) can shadow edgeclf's packages."""

import subprocess
import sys

from conftest import REPO_ROOT, cli_env

BLOCKER = """
import sys, importlib.abc
HEAVY = ('torch', 'torchvision', 'timm')
HEAVY_OURS = ('edgeclf.train', 'edgeclf.export', 'edgeclf.bench')
TORCH_FREE_OURS = ('edgeclf.train', 'edgeclf.train.config')  # the CLI reads its training defaults there
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HEAVY or (name.startswith(HEAVY_OURS) and name not in TORCH_FREE_OURS):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=cli_env(), timeout=120)


def test_import_runtime_without_torch():
    r = run_blocked(
        "import edgeclf, edgeclf.runtime, sys\n"
        "from edgeclf.runtime import PreprocessConfig, load_image, preprocess\n"
        "from edgeclf import Predictor\n"
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


def test_application_modules_named_like_ours_do_not_shadow_edgeclf(tmp_path):
    """An application folder with its own runtime.py and train.py (as torchvision's references and
    timm's repository root have): the CLI and ``from edgeclf import Predictor`` still work from it."""
    (tmp_path / "runtime.py").write_text("raise SystemExit('the application runtime.py was imported')\n")
    (tmp_path / "train.py").write_text("raise SystemExit('the application train.py was imported')\n")
    (tmp_path / "export.py").write_text("raise SystemExit('the application export.py was imported')\n")
    r = subprocess.run([sys.executable, "-m", "edgeclf", "--help"], capture_output=True, text=True,
                       cwd=tmp_path, env=cli_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "predict" in r.stdout
    code = ("from edgeclf import Predictor\nfrom edgeclf.runtime import Predictor as P2\n"
            "import edgeclf.train.split, edgeclf.runtime\n"
            "assert Predictor is P2\nprint(edgeclf.runtime.__file__)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=cli_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert not r.stdout.strip().startswith(str(tmp_path)), r.stdout
