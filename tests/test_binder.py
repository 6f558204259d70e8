"""Binder (repo2docker) installs binder/requirements.txt before it copies the repository, and caches that
layer between commits, only when the file has no local references; binder/postBuild installs the package."""
import os
import re
import stat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_ONLY = {"pytest", "nbval", "playwright", "greenlet", "jupyter-book"}   # jupyter-book builds the website


def pins(path):
    """{package: version} of the `name==version` lines; every other non-comment line is returned apart."""
    found, other = {}, []
    with open(os.path.join(ROOT, path)) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
            if m:
                found[m.group(1).lower()] = m.group(2)
            elif line:
                other.append(line)
    return found, other


def test_binder_requirements_are_pinned_packages_only():
    binder, other = pins("binder/requirements.txt")
    assert other == ["--extra-index-url https://download.pytorch.org/whl/cpu"]   # an index, not a local path
    for line in other:
        assert not line.startswith(("-r", "-e", "-c", ".", "/", "file:")), line


def test_binder_pins_equal_the_course_pins():
    course, course_other = pins("requirements.txt")
    binder, _ = pins("binder/requirements.txt")
    assert course_other == ["-e ."]
    assert {k: v for k, v in binder.items() if k in course} == {k: course[k] for k in binder if k in course}
    assert set(binder) == set(course) - TEST_ONLY     # nothing the notebooks need is missing on Binder
    assert tuple(map(int, binder["notebook"].split(".")[:2])) >= (7, 6)  # 7.4 (Binder's base image) needs jupyterlab < 4.5


def test_postbuild_installs_the_package():
    path = os.path.join(ROOT, "binder", "postBuild")
    assert os.stat(path).st_mode & stat.S_IXUSR, "repo2docker runs postBuild only when it is executable"
    with open(path) as f:
        text = f.read()
    assert text.startswith("#!") and "pip install --no-deps -e ." in text
