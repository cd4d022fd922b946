"""The repository's promises about itself: two commands, CI, pinned images, one ruff setup."""

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent


def pins() -> dict[str, Version]:
    result = {}
    for line in (REPO / "requirements/cog.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            result[name.lower()] = Version(version)
    return result


def test_every_dependency_is_pinned_in_the_images_within_its_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = pins()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = requirement.name.lower()
        if name == "cog":  # installed by cog build itself
            continue
        assert name in pinned, f"{name} is not pinned in requirements/cog.txt"
        assert requirement.specifier.contains(pinned[name]), f"{name}=={pinned[name]} vs {spec}"


def test_readme_starts_with_the_two_commands_and_ci_runs_make_test():
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci/run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo: install", makefile, re.M) and re.search(r"^test: ", makefile, re.M)
