"""Generating ``flows/grpc_gen`` from ``protos/person.proto`` with the pinned grpcio-tools.

``-I flows/grpc_gen=protos`` places the .proto inside the package on protoc's virtual
path, so the generated stub imports ``from flows.grpc_gen import person_pb2`` with no
post-processing. ``make proto`` runs this module; the staleness test calls ``generate``
into a temporary directory and compares byte for byte with the committed files.
"""

from __future__ import annotations

import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PROTO_DIR = BASE_DIR / "protos"
PACKAGE = "flows/grpc_gen"
PROTOS = ("person.proto",)
GENERATED_DIR = BASE_DIR / PACKAGE


def generate(out_dir: Path, proto_dir: Path = PROTO_DIR) -> list[Path]:
    """Run protoc on ``proto_dir`` into ``out_dir``; return the generated files relative to ``out_dir``."""
    from importlib import resources

    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PACKAGE}={proto_dir}",
        f"-I{resources.files('grpc_tools') / '_proto'}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(proto_dir / name) for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    return generated_files()


def generated_files() -> list[Path]:
    """The files protoc writes, relative to the output directory (the project root)."""
    suffixes = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
    return [Path(PACKAGE) / f"{Path(name).stem}{suffix}" for name in PROTOS for suffix in suffixes]


def main() -> int:
    for path in generate(BASE_DIR):
        print(f"generated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
