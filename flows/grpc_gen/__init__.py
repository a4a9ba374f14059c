"""Code generated from protos/*.proto by ``make proto`` (flows/grpc_codegen.py). Do not edit."""
