"""The registry and parameter validation: one declaration drives form, API and checks."""

from __future__ import annotations

import pytest

from flows import registry
from flows.params import Param, ParamError, bool_param, choice_param, float_param, int_param, validate

DECLARED = {
    "messages": int_param(10, 1, 100, "how many"),
    "rate": float_param(5.0, 0.0, 50.0, "per second"),
    "idempotent": bool_param(False, "inbox"),
    "exchange_type": choice_param("topic", ("direct", "topic", "fanout", "headers"), "type"),
    "bindings": Param("json", [], "list", max_length=50, check=lambda v: None if isinstance(v, list) else _raise()),
}


def _raise():
    raise ParamError("must be a list")


def test_defaults_fill_missing():
    cleaned, errors = validate(DECLARED, {})
    assert errors == {}
    assert cleaned == {"messages": 10, "rate": 5.0, "idempotent": False, "exchange_type": "topic", "bindings": []}


def test_strings_from_forms_and_cli_are_coerced():
    cleaned, errors = validate(DECLARED, {"messages": "7", "rate": "2.5", "idempotent": "true",
                                          "exchange_type": "fanout", "bindings": "[1]"})
    assert errors == {}
    assert cleaned["messages"] == 7 and cleaned["rate"] == 2.5 and cleaned["idempotent"] is True
    assert cleaned["exchange_type"] == "fanout" and cleaned["bindings"] == [1]


@pytest.mark.parametrize(
    "given, field, fragment",
    [
        ({"messages": 0}, "messages", "at least 1"),
        ({"messages": 101}, "messages", "at most 100"),
        ({"messages": "ten"}, "messages", "integer"),
        ({"messages": 1.5}, "messages", "integer"),
        ({"messages": True}, "messages", "boolean"),
        ({"rate": "fast"}, "rate", "number"),
        ({"rate": float("nan")}, "rate", "finite"),
        ({"idempotent": "maybe"}, "idempotent", "true or false"),
        ({"exchange_type": "x"}, "exchange_type", "one of"),
        ({"bindings": "{"}, "bindings", "valid JSON"),
        ({"bindings": "{}"}, "bindings", "must be a list"),
        ({"bindings": "[" + "1," * 40 + "1]"}, "bindings", "at most 50"),
        ({"nope": 1}, "nope", "unknown parameter"),
    ],
)
def test_bad_values_name_the_field(given, field, fragment):
    _, errors = validate(DECLARED, given)
    assert field in errors
    assert fragment in errors[field]


def test_params_must_be_an_object():
    _, errors = validate(DECLARED, [1, 2])
    assert "params" in errors


def test_every_registered_workflow_declares_a_valid_contract():
    for cls in registry.all_workflows():
        contract = cls.contract()
        assert contract["slug"] in registry.WORKFLOWS
        assert contract["pattern"] in ("sync", "async", "compare")
        assert contract["lesson"]
        cleaned, errors = cls.validate({})
        assert errors == {}, f"{cls.slug} defaults do not validate: {errors}"
        for name, spec in contract["params"].items():
            assert spec["help"], f"{cls.slug}.{name} has no help text"
            if spec["type"] in ("int", "float"):
                assert spec["min"] is not None and spec["max"] is not None, f"{cls.slug}.{name} is unbounded"
        expected = cls().expected(cleaned)
        # Registry.Workflow's own answer is 0: a workflow that forgot to say what a run reaches.
        assert isinstance(expected, int) and expected > 0, f"{cls.slug}: a default run expects {expected!r}"


def test_unknown_slug():
    with pytest.raises(registry.UnknownWorkflow):
        registry.get("nope")


def test_a_float_parameter_given_a_huge_integer_is_refused_not_crashed():
    _, errors = validate(DECLARED, {"rate": int("9" * 401)})
    assert "finite number" in errors["rate"]
    _, errors = validate(DECLARED, {"rate": "9" * 401})  # as a string, as a form sends it
    assert "finite" in errors["rate"]


def test_a_json_parameter_nested_too_deep_is_refused():
    deep = Param("json", [], "anything", max_length=100_000)
    _, errors = validate({"x": deep}, {"x": "[" * 30_000 + "]" * 30_000})
    assert "nested deeper than" in errors["x"]
    value: list = []
    for _ in range(40):
        value = [value]
    _, errors = validate({"x": deep}, {"x": value})
    assert "nest deeper than" in errors["x"]


PROTOCOLS = {"protocols": Param("multi", ["http", "grpc", "kafka"], "lanes", choices=("http", "grpc", "kafka"),
                                item="protocol")}


@pytest.mark.parametrize("given, expected", [
    (["kafka", "http"], ["http", "kafka"]),  # the declared order, whatever order they came in
    ("grpc, kafka", ["grpc", "kafka"]),  # a form's or the CLI's comma-separated text
    (" http ,http,", ["http"]),  # each once; blanks between commas ignored
    (("grpc",), ["grpc"]),
])
def test_multi_takes_a_list_or_comma_separated_text(given, expected):
    cleaned, errors = validate(PROTOCOLS, {"protocols": given})
    assert errors == {}
    assert cleaned["protocols"] == expected


@pytest.mark.parametrize("given, fragment", [
    (["http", "smtp"], "unknown protocol 'smtp'; choose from http, grpc, kafka"),
    ("http,nope", "unknown protocol 'nope'"),
    ([], "choose at least one of http, grpc, kafka"),
    ("", "choose at least one"),
    (" , ", "choose at least one"),
    (3, "must be a list of http, grpc, kafka"),
    ([1], "unknown protocol 1"),
])
def test_multi_refuses_unknown_and_empty_naming_the_choices(given, fragment):
    _, errors = validate(PROTOCOLS, {"protocols": given})
    assert fragment in errors["protocols"]


def test_multi_default_and_contract_offer_the_choices():
    cleaned, errors = validate(PROTOCOLS, {})
    assert errors == {} and cleaned["protocols"] == ["http", "grpc", "kafka"]
    contract = PROTOCOLS["protocols"].contract()
    assert contract["type"] == "multi"
    assert contract["choices"] == ["http", "grpc", "kafka"] and contract["default"] == ["http", "grpc", "kafka"]
