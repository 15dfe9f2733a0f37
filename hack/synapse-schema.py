#!/usr/bin/env python3
"""Prints the database schema versions of Synapse releases, read from their
wheels on PyPI (downloaded once, cached outside the repository).

    hack/synapse-schema.py 1.160.0 1.163.2 ...

Each output line is `VERSION SCHEMA_VERSION SCHEMA_COMPAT_VERSION`, the two
numbers as `synapse/storage/schema/__init__.py` of that release defines them.
"""

import ast
import glob
import os
import subprocess
import sys
import zipfile

CACHE = os.path.join(
    os.environ.get("CADUCEUS_CACHE", os.path.expanduser("~/.cache/caduceus")),
    "synapse-wheels",
)


def wheel(version: str) -> str:
    found = glob.glob(os.path.join(CACHE, f"matrix_synapse-{version}-*.whl"))
    if not found:
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--python-version", "3.11",
             "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
             "--platform", "manylinux2014_x86_64",
             f"matrix-synapse=={version}", "-d", CACHE],
            check=True,
        )
        found = glob.glob(os.path.join(CACHE, f"matrix_synapse-{version}-*.whl"))
    if not found:
        sys.exit(f"no wheel of matrix-synapse {version} could be downloaded")
    return found[0]


def schema_versions(path: str) -> tuple[int, int]:
    source = zipfile.ZipFile(path).read("synapse/storage/schema/__init__.py")
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("SCHEMA_VERSION", "SCHEMA_COMPAT_VERSION"):
                values[node.targets[0].id] = ast.literal_eval(node.value)
    return values["SCHEMA_VERSION"], values["SCHEMA_COMPAT_VERSION"]


for version in sys.argv[1:]:
    schema, compat = schema_versions(wheel(version.lstrip("v")))
    print(f"v{version.lstrip('v')} {schema} {compat}")
