"""Build the deployable artifacts with ``sam build`` itself, for the Python and CPU of this machine.

``template.yaml`` targets python3.13 on arm64; ``sam build`` without a container can only build for the Python
it runs beside, and compiled wheels (pydantic-core) only import on the CPU they were built for. So this writes a
copy of the template with only the runtime and the architecture changed (``.aws-sam/template.<python>.json``,
every code path made absolute) and runs ``sam build`` on it into ``.aws-sam/build``: the same layout, the same
layer (``python/medspa`` beside the pinned dependencies), the same function directories that a deploy ships, and
the artifacts tests/package/test_built_artifacts.py imports with nothing else on the path. A real deploy runs
``sam build --use-container`` on ``template.yaml`` as it is.

Usage: ``make package`` (``.venv-sam/bin/sam``, aws-sam-cli in a virtual environment of its own, since its pins
are not the product's).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".aws-sam"
BUILD = OUT / "build"
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]


def for_this_machine(template: dict[str, Any]) -> dict[str, Any]:
    """The template with this machine's runtime and architecture, and absolute code paths; nothing else changed."""
    function = template["Globals"]["Function"]
    function["Runtime"], function["Architectures"] = RUNTIME, [ARCHITECTURE]
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            props["CompatibleRuntimes"], props["CompatibleArchitectures"] = [RUNTIME], [ARCHITECTURE]
            resource["Metadata"] |= {"BuildMethod": RUNTIME, "BuildArchitecture": ARCHITECTURE}
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = str((ROOT / props[key]).resolve())
    return template


def main() -> None:
    sam = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".venv-sam" / "bin" / "sam"
    OUT.mkdir(exist_ok=True)
    copy = OUT / f"template.{RUNTIME}.{ARCHITECTURE}.json"
    copy.write_text(json.dumps(for_this_machine(cfn_yaml.load(str(ROOT / "template.yaml"))), indent=1))
    subprocess.run([str(sam), "build", "--template-file", str(copy), "--build-dir", str(BUILD), "--parallel"],
                   check=True, cwd=ROOT, env={**os.environ, "SAM_CLI_TELEMETRY": "0"})
    print(f"built for {RUNTIME} on {ARCHITECTURE} into {BUILD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
