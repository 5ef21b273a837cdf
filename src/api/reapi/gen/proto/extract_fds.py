"""Builds a FileDescriptorSet from the serialized descriptors embedded in
protoc-generated *_pb2.py files (e.g. the `buildgrid` wheel's _protos)."""
import ast, sys

def serialized(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return node.args[0].value
    raise SystemExit(f"no descriptor in {path}")

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

out, files = sys.argv[1], sys.argv[2:]
with open(out, "wb") as f:
    for p in files:
        fd = serialized(p)
        f.write(b"\x0a" + varint(len(fd)) + fd)  # FileDescriptorSet.file = 1
