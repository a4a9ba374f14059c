"""The committed gRPC code is exactly what the pinned grpcio-tools makes from protos/person.proto."""

from __future__ import annotations

from pathlib import Path

from flows.grpc_codegen import BASE_DIR, PROTO_DIR, PROTOS, generate


def differing(generated: list[Path], out: Path) -> list[str]:
    """Generated files whose bytes differ from (or are missing in) the committed tree."""
    return [
        str(relative) for relative in generated
        if not (BASE_DIR / relative).exists() or (BASE_DIR / relative).read_bytes() != (out / relative).read_bytes()
    ]


def test_committed_code_is_not_stale(tmp_path):
    generated = generate(tmp_path)
    assert generated, "protoc produced nothing"
    stale = differing(generated, tmp_path)
    assert not stale, f"{', '.join(stale)} out of date with protos/; run `make proto` and commit the result"


def test_a_changed_contract_is_noticed(tmp_path):
    # The check above is only worth something if editing the .proto makes it fail.
    protos = tmp_path / "protos"
    protos.mkdir()
    for name in PROTOS:
        text = (PROTO_DIR / name).read_text()
        (protos / name).write_text(text.replace("int32 age = 2;", "int32 age = 2;\n  string email = 3;"))
    out = tmp_path / "out"
    changed = differing(generate(out, proto_dir=protos), out)
    assert "flows/grpc_gen/person_pb2.py" in changed


def test_generated_stub_imports_through_the_package():
    from flows.grpc_gen import person_pb2, person_pb2_grpc

    source = Path(person_pb2_grpc.__file__).read_text()
    assert "from flows.grpc_gen import person_pb2" in source
    fields = {f.name: f.number for f in person_pb2.Person.DESCRIPTOR.fields}
    assert fields == {"name": 1, "age": 2}
    service = person_pb2.DESCRIPTOR.services_by_name["PersonService"]
    assert {m.name: (m.input_type.name, m.output_type.name) for m in service.methods} == {
        "GetPerson": ("GetPersonRequest", "PersonResponse"),
        "CreatePerson": ("CreatePersonRequest", "PersonResponse"),
    }
