#!/usr/bin/env python3
"""Fail when a role's README variable table and its argument_specs disagree (`make lint` runs it).

For every role under roles/:
- the options of the `main` entry point in meta/argument_specs.yml and the variables of the
  README's variable table (the table whose first header cell is "variable") are the same set;
- every variable that defaults/main.yml defines is an option of `main`.

So a setting cannot be added, renamed or dropped in one place and forgotten in the other.
Usage: scripts/check-role-docs.py [roles directory]   (exit status 1 lists every mismatch)
"""

import re
import sys
from pathlib import Path

import yaml

# A table row whose first cell is one `variable_name`.
TABLE_ROW = re.compile(r"^\|\s*`([a-z_][a-z0-9_]*)`\s*\|")
TABLE_HEADER = re.compile(r"^\|\s*variable\s*\|", re.IGNORECASE)


def readme_variables(readme: Path) -> set[str]:
    """The variables listed in the README's variable table (the rows after its header)."""
    variables: set[str] = set()
    in_table = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if TABLE_HEADER.match(line):
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                in_table = False
                continue
            row = TABLE_ROW.match(line)
            if row:
                variables.add(row.group(1))
    return variables


def spec_options(argument_specs: Path) -> set[str]:
    specs = yaml.safe_load(argument_specs.read_text(encoding="utf-8")) or {}
    return set((specs.get("argument_specs", {}).get("main", {}) or {}).get("options", {}) or {})


def default_variables(defaults: Path) -> set[str]:
    if not defaults.exists():
        return set()
    return set(yaml.safe_load(defaults.read_text(encoding="utf-8")) or {})


def check_role(role: Path) -> list[str]:
    problems: list[str] = []
    readme, specs = role / "README.md", role / "meta" / "argument_specs.yml"
    if not readme.exists() or not specs.exists():
        return [f"{role.name}: needs README.md and meta/argument_specs.yml"]
    documented, options = readme_variables(readme), spec_options(specs)
    defined = default_variables(role / "defaults" / "main.yml")
    for name in sorted(options - documented):
        problems.append(f"{role.name}: {name} is in meta/argument_specs.yml but not in the README's variable table")
    for name in sorted(documented - options):
        problems.append(f"{role.name}: {name} is in the README's variable table but not in meta/argument_specs.yml")
    for name in sorted(defined - options):
        problems.append(f"{role.name}: {name} is set in defaults/main.yml but not in meta/argument_specs.yml")
    return problems


def main() -> int:
    roles = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "roles"
    problems = [problem for role in sorted(roles.iterdir()) if role.is_dir() for problem in check_role(role)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
