"""Drives the reference implementation (model_signing) through its Python API.

The reference CLI only verifies files+sha256 signatures (it guesses the
hashing config from the signature and gets blake2b and float shard sizes
wrong), so shards and other hashes are signed and verified here with an
explicit model_signing.hashing.Config, as the reference's own tests do.

usage: reference.py sign|verify --model M --signature S --key K
                    [--method files|shards] [--hash sha256|blake2b|blake3]
                    [--shard-size N] [--ignore P]... [--allow-symlinks]
"""
import argparse
import pathlib
import sys

from model_signing import hashing, signing, verifying

p = argparse.ArgumentParser()
p.add_argument("action", choices=["sign", "verify"])
p.add_argument("--model", required=True)
p.add_argument("--signature", required=True)
p.add_argument("--key", required=True)
p.add_argument("--method", default="files", choices=["files", "shards"])
p.add_argument("--hash", default="sha256", choices=["sha256", "blake2b", "blake3"])
p.add_argument("--shard-size", type=int, default=1_000_000_000)
p.add_argument("--ignore", action="append", default=[])
p.add_argument("--allow-symlinks", action="store_true")
a = p.parse_args()

algorithm = {"sha256": "sha256", "blake2b": "blake2", "blake3": "blake3"}[a.hash]
config = hashing.Config()
if a.method == "shards":
    config.use_shard_serialization(hashing_algorithm=algorithm, shard_size=a.shard_size, allow_symlinks=a.allow_symlinks)
else:
    config.use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=a.allow_symlinks)
config.set_allow_symlinks(a.allow_symlinks)

model = pathlib.Path(a.model)
signature = pathlib.Path(a.signature)
ignores = list(a.ignore)
# As the reference CLI does: a signature inside the model is not part of it.
try:
    ignores.append(str(signature.resolve().relative_to(model.resolve())))
except ValueError:
    pass
config.set_ignored_paths(paths=ignores, ignore_git_paths=True)

try:
    if a.action == "sign":
        signing.Config().use_elliptic_key_signer(private_key=a.key).set_hashing_config(config).sign(model, signature)
    else:
        verifying.Config().use_elliptic_key_verifier(public_key=a.key).set_hashing_config(config).verify(model, signature)
except Exception as e:  # report, exit non-zero: the test asserts on it
    print(f"reference {a.action} failed: {e}", file=sys.stderr)
    sys.exit(1)
print(f"reference {a.action} ok")
