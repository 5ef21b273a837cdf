# Writes the test's distributions into argv[1], without the network or any
# build tool: a pure-Python wheel (larder_demo) and an sdist
# (larder_sdist_demo, which requires larder-demo) whose in-tree PEP 517
# backend needs no build requirements, so an install from a proxy that has
# only these two files works offline.
import os
import sys

WHEEL_CODE = '''
import base64, hashlib, os, zipfile

def wheel(directory, name, version, source, requires=()):
    dist = "%s-%s.dist-info" % (name, version)
    meta = "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\nRequires-Python: >=3.7\\n" % (
        name.replace("_", "-"), version)
    meta += "".join("Requires-Dist: %s\\n" % r for r in requires)
    files = {
        name + ".py": source.encode(),
        dist + "/METADATA": meta.encode(),
        dist + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: larder-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    lines = []
    for n, d in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
        lines.append("%s,sha256=%s,%d" % (n, h, len(d)))
    lines.append(dist + "/RECORD,,")
    files[dist + "/RECORD"] = ("\\n".join(lines) + "\\n").encode()
    filename = "%s-%s-py3-none-any.whl" % (name, version)
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as z:
        for n, d in files.items():
            z.writestr(n, d)
    return filename
'''

BACKEND = WHEEL_CODE + '''
def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return wheel(wheel_directory, "larder_sdist_demo", "1.0",
                 "VALUE = 'built from the sdist'\\n", ["larder-demo>=1.0"])
'''

PYPROJECT = '''[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
'''


def sdist(directory):
    import io
    import tarfile
    top = "larder_sdist_demo-1.0"
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: larder-sdist-demo\nVersion: 1.0\n",
        "pyproject.toml": PYPROJECT,
        "backend.py": BACKEND,
    }
    with tarfile.open(os.path.join(directory, top + ".tar.gz"), "w:gz") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo("%s/%s" % (top, name))
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


out = sys.argv[1]
exec(WHEEL_CODE)
wheel(out, "larder_demo", "1.0", "VALUE = 'from the wheel'\n")
sdist(out)
